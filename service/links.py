"""Every personal link and address Letterbox puts in mail, signed by the one token signer."""

from __future__ import annotations

from .settings import Settings
from .tokens import Purpose, TokenSigner


class Links:
    """Builds confirm, unsubscribe, preferences, view and VERP links for one installation."""

    def __init__(self, settings: Settings, signer: TokenSigner) -> None:
        self._base = settings.public_url.rstrip("/")
        self._domain = settings.effective_bounce_domain
        self.signer = signer

    def confirm_url(self, subscriber_id: int) -> str:
        """The double opt-in link (expires; see ``confirm_max_age_seconds``)."""
        return f"{self._base}/confirm/{self.signer.sign(Purpose.CONFIRM, subscriber_id)}"

    def unsubscribe_token(self, subscriber_id: int, list_id: int | None, edition_id: int | None) -> str:
        """Identifies the person, the list the mail was for and the edition; never expires."""
        return self.signer.sign(Purpose.UNSUBSCRIBE, subscriber_id, list_id, edition_id)

    def unsubscribe_url(self, token: str) -> str:
        """The page and the RFC 8058 one-click target."""
        return f"{self._base}/unsubscribe/{token}"

    def unsubscribe_mailto(self, token: str) -> str:
        """The ``mailto:`` alternative of ``List-Unsubscribe``."""
        return f"mailto:unsubscribe+{token}@{self._domain}?subject=unsubscribe"

    def proof_unsubscribe_token(self) -> str:
        """The unsubscribe token of a proof: the page opens, and nothing changes, for no one is named."""
        return self.signer.sign(Purpose.PROOF_UNSUBSCRIBE)

    def view_url(self, edition_id: int, subscriber_id: int) -> str:
        """The reader's own copy of an edition as a web page (``{{view_url}}``); never expires."""
        return f"{self._base}/view/{self.signer.sign(Purpose.VIEW, subscriber_id, edition_id)}"

    def preferences_url(self, subscriber_id: int) -> str:
        """The page where a reader changes their details or lists."""
        return f"{self._base}/preferences/{self.signer.sign(Purpose.PREFERENCES, subscriber_id)}"

    def verp_address(self, delivery_id: int) -> str:
        """The per-copy envelope sender whose signed token identifies the delivery."""
        return f"bounce+{self.signer.sign(Purpose.VERP, delivery_id)}@{self._domain}"

    def system_mail_return_path(self, system_mail_id: int) -> str:
        """The envelope sender of a system mail (a confirmation): its signed token names the mail,
        so a bounce of it reaches the bounce receiver and can drop the sign-up."""
        return f"bounce+{self.signer.sign(Purpose.SYSTEM_MAIL, system_mail_id)}@{self._domain}"
