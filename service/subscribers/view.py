"""``GET /view/{token}``: a reader's own copy of an edition as a web page (``{{view_url}}``).

The page is the edition's HTML with that reader's placeholders filled in, as
the composer fills them in mail, and nothing added: no tracking pixel, no
click redirect.  The edition's HTML is the renderer's, not ours, so it is
served under a Content-Security-Policy of its own that allows no script, no
form, no frame and no plugin, and only https (or inline) images and styles;
the signed token never leaves in a Referer header.
"""

from __future__ import annotations

import html
import re

import asyncpg
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from ..db.pool import Database
from ..links import Links
from ..mail.compose import PLACEHOLDERS
from ..problem_docs import PROBLEMS
from ..tokens import Purpose, TokenSigner
from .web import AnyRequest, LinkExpired, PageError, read_token

TAGS = ["public pages"]
CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline' https:; font-src https: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_PLACEHOLDER = re.compile(r"\{\{\s*(" + "|".join(sorted(PLACEHOLDERS)) + r")\s*\}\}")


class NoCopy(PageError):
    """A genuine link to an edition this reader was never sent."""

    status_code = 404
    title = "There is no copy here"


def fill(body: str, values: dict[str, str]) -> str:
    """The edition's HTML with each placeholder replaced by its value, escaped as the composer does."""
    return _PLACEHOLDER.sub(lambda found: html.escape(values[found[1]]), body)


@get("/view/{token:str}", tags=TAGS, summary="A reader's copy of an edition as a web page",
     media_type="text/html", opt={PROBLEMS: (404, 410)})
async def view_page(
    request: AnyRequest,
    token: FromPath[str],
    conn: NamedDependency[asyncpg.Connection],
    db: NamedDependency[Database],
    signer: NamedDependency[TokenSigner],
    links: NamedDependency[Links],
) -> Response[str]:
    """The edition as this reader was sent it; 400 for a forged link, 410 once the reader or edition is gone."""
    subscriber_id, edition_id = read_token(signer, Purpose.VIEW, token, fields=2)
    assert subscriber_id is not None, "read_token checks the first field"
    if edition_id is None:
        raise NoCopy("This link does not lead to an edition.")
    copy = await conn.fetchrow(db.q["edition-view-copy"], edition_id, subscriber_id)
    if copy is None:
        raise LinkExpired("This edition is no longer available.")
    if copy["subscriber_id"] is None:
        raise LinkExpired("We no longer hold any details for this link: you are not on any of our lists.")
    if copy["delivery_id"] is None:
        raise NoCopy("There is no copy of this edition for this link.")
    values = {
        "name": copy["name"] or "",
        "unsubscribe_url": links.unsubscribe_url(links.unsubscribe_token(subscriber_id, copy["list_id"], edition_id)),
        "preferences_url": links.preferences_url(subscriber_id),
        "view_url": links.view_url(edition_id, subscriber_id),
    }
    return Response(fill(copy["html"], values), media_type="text/html; charset=utf-8", headers=HEADERS)
