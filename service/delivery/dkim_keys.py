"""The DKIM key of this installation, loaded once at worker start so a bad key stops the start."""

from __future__ import annotations

from collections.abc import Sequence

from ..settings import Settings
from .dkim import BodyPieces, KeyRing
from .dkim_process import SigningProcess


class DkimKeys(KeyRing):
    """One configured key, usable for every From domain an edition may use; edition copies are
    signed in a child process (see :mod:`.dkim_process`), other mail here."""

    def __init__(self, selector: str, key_pem: bytes) -> None:
        super().__init__(selector, key_pem)  # loads and checks the key now, once: a bad key fails the start
        self._process = SigningProcess(selector, key_pem)
        self._pieces = BodyPieces()

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

    async def header_for_copy(self, pieces: Sequence[bytes], shared: Sequence[bool], domain: str) -> bytes:
        """The DKIM-Signature field for a composed copy given as its pieces (see
        :class:`service.mail.compose.RenderedCopy`; ValueError when it cannot be signed). The body's
        relaxed form is worked out here, the template's pieces once per edition; the signing
        process hashes and signs while the event loop goes on sending."""
        split = self._pieces.split(pieces, shared)
        if split is None:
            return await self._process.header(b"".join(pieces), domain)
        fields, parts = split
        return await self._process.signed_header(fields, parts, self._pieces.is_shared, domain)

    async def close(self) -> None:
        """End the signing process."""
        await self._process.close()
