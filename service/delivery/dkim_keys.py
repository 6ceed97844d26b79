"""The DKIM key of this installation, loaded once at worker start so a bad key stops the start."""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from ..settings import Settings
from .dkim import DkimSigner

_SWITCH_INTERVAL = 0.0005


class DkimKeys:
    """One configured key, usable for every From domain an edition may use."""

    def __init__(self, selector: str, key_pem: bytes) -> None:
        # Load the key now, once: an unreadable or malformed key fails here, at start, not mid-send.
        self._first = DkimSigner(domain="example.org", selector=selector, private_key_pem=key_pem)
        self._signers: dict[str, DkimSigner] = {}
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimKeys | None:
        """Keys from ``LETTERBOX_DKIM_SELECTOR``/``LETTERBOX_DKIM_KEY_FILE``, or None when unset."""
        selector, key_file = settings.dkim_selector, settings.dkim_key_file
        if not selector or not key_file:
            return None
        try:
            with open(key_file, "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            raise ValueError(f"LETTERBOX_DKIM_KEY_FILE: cannot read {key_file}: {exc.strerror}") from exc
        return cls(selector, pem)

    def signer_for(self, domain: str) -> DkimSigner:
        """The signer for ``d=domain`` (the edition's From domain)."""
        signer = self._signers.get(domain)
        if signer is None:
            signer = self._signers[domain] = self._first.for_domain(domain)
        return signer

    def sign(self, message: bytes, domain: str) -> bytes:
        """Prepend a DKIM-Signature for ``domain``."""
        return self.signer_for(domain).sign(message)

    async def header(self, message: bytes, domain: str) -> bytes:
        """The DKIM-Signature field for a CRLF-normal ``message`` (a composed copy), made in a
        thread: the RSA operation, most of a signature's cost, runs there without the GIL, so
        the event loop goes on sending on one core while another signs."""
        if self._pool is None:
            # A signing thread needs the GIL back for a moment after OpenSSL; a busy event loop
            # keeps it for up to the switch interval (5 ms by default), and four senders waiting
            # that long for their signatures cost a third of the signed rate (bench/send.py).
            sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_INTERVAL))
            self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="dkim")
        signer = self.signer_for(domain)
        return await asyncio.get_running_loop().run_in_executor(self._pool, signer.header, message)

    def close(self) -> None:
        """Let the signing threads go."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
