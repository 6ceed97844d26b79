"""The DKIM key of this installation, loaded once at worker start so a bad key stops the start."""

from __future__ import annotations

from ..settings import Settings
from .dkim import KeyRing
from .dkim_process import SigningProcess


class DkimKeys(KeyRing):
    """One configured key, usable for every From domain an edition may use; edition copies are
    signed in a child process (see :mod:`.dkim_process`), other mail here."""

    def __init__(self, selector: str, key_pem: bytes) -> None:
        super().__init__(selector, key_pem)  # loads and checks the key now, once: a bad key fails the start
        self._process = SigningProcess(selector, key_pem)

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

    async def header(self, message: bytes, domain: str) -> bytes:
        """The DKIM-Signature field for a CRLF-normal ``message`` (a composed copy), made in the
        signing process while the event loop goes on sending."""
        return await self._process.header(message, domain)

    async def close(self) -> None:
        """End the signing process."""
        await self._process.close()
