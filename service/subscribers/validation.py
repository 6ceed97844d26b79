"""Checking what people and operators send: addresses, names, and agency/role/list slugs.

Shared by the public form, the API and the importer, so an address accepted by
one is accepted by all.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from ..errors import InvalidValue

NAME_MAX = 200
# Control characters (line breaks included) have no place in a name and could reach mail headers.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Plain ASCII addresses, the overwhelming majority: a dot-atom local part and LDH labels under an
# alphabetic TLD. Anything else (Unicode, IDNA 'xn--' labels, quoted parts, odd TLDs) takes the
# full validator. tests/subscribers/test_validation.py holds this to email-validator's verdicts;
# it costs a tenth of the full validator, which was most of an import's time. The two parts are
# matched apart (neither holds an '@', so an address matches only when split at its one '@'),
# and the domain's verdict is remembered: an import meets the same few domains 100,000 times.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_COMMON_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*", re.ASCII)
_COMMON_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}", re.ASCII)
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def normalise_email(raw: str, *, field: str | None = None) -> str:
    """The address in its normal form, or :class:`InvalidValue` (about ``field``, when given).

    The domain is stored in its ASCII (IDNA) form, lower-cased, so that ``bücher.example`` and
    ``xn--bcher-kva.example`` are one person and the address can be sent as stored; a non-ASCII
    local part is kept (Unicode NFC) and sent with SMTPUTF8. No DNS lookups: a form must not
    wait on, or leak queries to, the reader's mail domain.
    """
    try:
        return _normalised(raw)
    except InvalidValue as exc:
        if field is None:
            raise
        raise InvalidValue(str(exc), field=field) from exc.__cause__


def _normalised(raw: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidValue("Enter an e-mail address.")
    local, _, domain = text.rpartition("@")
    if len(text) <= 254 and len(local) <= 64 and _COMMON_LOCAL_PART.fullmatch(local) is not None:
        common = _common_domain(domain)
        if common:
            return text if common == domain else f"{local}@{common}"
    if "\ufffd" in text:  # bytes that were not UTF-8, replaced when the form or file was decoded
        raise InvalidValue("The e-mail address contains characters that could not be read; type it again.")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue(f"Enter a valid e-mail address, like name@example.org ({exc}).") from exc
    return f"{valid.local_part}@{valid.ascii_domain}"


@functools.lru_cache(maxsize=4096)
def _common_domain(domain: str) -> str:
    """``domain`` lower-cased when it is a plain one the fast path may accept as it is; else ""."""
    if _COMMON_DOMAIN.fullmatch(domain) is None or "--" in domain:
        return ""
    lowered = domain.lower()
    # A special-use name (RFC 6761), or one under it, cannot take mail: the full validator says why.
    if any(lowered == name or lowered.endswith("." + name) for name in _SPECIAL_USE):
        return ""
    return lowered


def clean_name(raw: str) -> str:
    """A display name without surrounding space, or :class:`InvalidValue`."""
    name = raw.strip()
    if len(name) > NAME_MAX:
        raise InvalidValue(f"The name can be at most {NAME_MAX} characters long.")
    if _CONTROL.search(name):
        raise InvalidValue("The name cannot contain line breaks or other control characters.")
    if "\ufffd" in name:
        raise InvalidValue("The name contains characters that could not be read; type it again.")
    return name


def holds_nul(value: Any) -> bool:
    """Whether a decoded JSON value has U+0000 in any key or string: PostgreSQL's jsonb cannot store it."""
    pending = [value]
    while pending:  # a loop, not recursion: the value may be nested as deep as the decoder allows
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return False
