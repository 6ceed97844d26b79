"""CSRF protection for the public forms that a plain browser form passes without JavaScript or cookies.

Two checks, either of which refuses a forged post:

* a signed, timed hidden field (``csrf``) that only a page we served carries,
  bound to the form it came from (and, on the preferences page, to the
  person), so a token from one form does not work on another;
* the browser's own word: a ``Sec-Fetch-Site: cross-site`` post comes from
  another site's page, whatever it carries.

The confirm and unsubscribe buttons need neither: their signed link is the
secret, and RFC 8058 forbids asking a mail client for more.
"""

from __future__ import annotations

from enum import IntEnum

from ..tokens import Purpose, TokenInvalid, TokenSigner

FIELD = "csrf"
MAX_AGE_SECONDS = 24 * 3600


class Form(IntEnum):
    """Which form a token belongs to."""

    SUBSCRIBE = 1
    PREFERENCES = 2


def issue(signer: TokenSigner, form: Form, subject: int = 0) -> str:
    """A token for one rendering of ``form`` (``subject``: the person, for the preferences page)."""
    return signer.sign(Purpose.CSRF, int(form), subject)


def passes(signer: TokenSigner, token: str, form: Form, subject: int = 0, *, fetch_site: str | None) -> bool:
    """Whether a post carries a fresh token for this form and did not come from another site."""
    if fetch_site == "cross-site" or not token:
        return False
    try:
        fields = signer.verify(Purpose.CSRF, token, max_age=MAX_AGE_SECONDS)
    except TokenInvalid:  # forged, for another form, or expired
        return False
    return fields == (int(form), subject)
