"""Argon2id password hashes (argon2-cffi, its RFC 9106 low-memory defaults).

Hashing costs tens of milliseconds of CPU and 64 MiB on purpose, so it runs in
a thread, never on the event loop, and at most two at a time per process: a
burst of sign-ins waits its turn instead of taking every worker thread (other
work runs in them too) and 64 MiB each.  An unknown email is checked against a
dummy hash of the same cost, so that a wrong address and a wrong password take
the same time and get the same answer.
"""

from __future__ import annotations

import asyncio
import functools
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1000

_hasher = PasswordHasher()
_slots = threading.BoundedSemaphore(2)


class WeakPassword(ValueError):
    """A password too short or too long to accept."""


def check_strength(password: str) -> None:
    """Refuse passwords shorter than 12 characters (NCSC/NIST length over complexity) or absurdly long."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must be at most {MAX_LENGTH} characters long")


async def hash_password(password: str) -> str:
    """The Argon2id hash string of ``password`` (checked for strength first)."""
    check_strength(password)

    def compute() -> str:
        with _slots:
            return _hasher.hash(password)

    return await asyncio.to_thread(compute)


@functools.cache
def _dummy_hash() -> str:
    with _slots:
        return _hasher.hash("letterbox: no such account, compare anyway")


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash, the same work is done and False returned."""
    target = stored if stored is not None else await asyncio.to_thread(_dummy_hash)

    def check() -> bool:
        try:
            with _slots:
                return _hasher.verify(target, password[:MAX_LENGTH])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    matched = await asyncio.to_thread(check)
    return matched and stored is not None
