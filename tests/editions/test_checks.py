"""The edition check: each check over a table of HTML, and POST /v1/editions/check through HTTP."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.editions import checks
from service.editions.checks import Draft, Finding, draft_of
from service.settings import Settings

Client = AsyncTestClient[Litestar]
Check = Callable[[Draft], list[Finding]]
GOOD = ('<!doctype html>\n<html lang="en">\n<body>\n<h1>March briefing</h1>\n'
        '<p>Dear {{name}}, read <a href="https://example.org/report">the March report</a>.</p>\n'
        '<img src="https://example.org/logo.png" alt="">\n'
        '<p><a href="{{view_url}}">View in your browser</a> · <a href="{{preferences_url}}">Your choices</a> · '
        '<a href="{{unsubscribe_url}}">Unsubscribe</a> · <a href="mailto:desk@example.org">Write to us</a> · '
        '<a href="tel:+441234567890">Call us</a> · <a href="#top">Top</a></p>\n</body>\n</html>\n')


def _codes(check: Check, html: str, text: str | None = None) -> list[tuple[str, str, str]]:
    return [(f.level, f.code, f.where) for f in check(draft_of(html, text))]


CASES: list[tuple[str, Check, str, str | None, list[tuple[str, str, str]]]] = [
    # image alt
    ("image with alt", checks.check_image_alt, '<img src="https://x.org/a.png" alt="A map">', None, []),
    ("decorative image", checks.check_image_alt, '<img src="https://x.org/a.png" alt="">', None, []),
    ("image without alt", checks.check_image_alt, '<p>hi</p>\n<img src="https://x.org/a.png">', None,
     [("error", "image-without-alt", 'html line 2, <img src="https://x.org/a.png">')]),
    ("self-closed image without alt", checks.check_image_alt, '<img src="https://x.org/b.png"/>', None,
     [("error", "image-without-alt", 'html line 1, <img src="https://x.org/b.png"/>')]),
    # lang
    ("lang given", checks.check_lang, '<html lang="cy"><p>Helo</p></html>', None, []),
    ("no lang", checks.check_lang, "<!doctype html>\n<html>\n<p>Hi</p></html>", None,
     [("error", "no-language", "html line 2, <html>")]),
    ("empty lang", checks.check_lang, '<html lang=" "><p>Hi</p></html>', None,
     [("error", "no-language", 'html line 1, <html lang=" ">')]),
    ("no html tag", checks.check_lang, "<p>Hi</p>", None,
     [("error", "no-language", "html line 1 (there is no <html> tag)")]),
    # link text
    ("descriptive link", checks.check_link_text, '<a href="https://x.org">the March report</a>', None, []),
    ("click here", checks.check_link_text, '<a href="https://x.org">Click  HERE</a>', None,
     [("warning", "vague-link-text", 'html line 1, <a href="https://x.org">')]),
    ("here, in bold", checks.check_link_text, '<p>\n<a href="https://x.org"><b>here</b>.</a>', None,
     [("warning", "vague-link-text", 'html line 2, <a href="https://x.org">')]),
    ("read more", checks.check_link_text, '<a href="https://x.org">Read more</a>', None,
     [("warning", "vague-link-text", 'html line 1, <a href="https://x.org">')]),
    ("this link", checks.check_link_text, '<a href="https://x.org">this link</a>', None,
     [("warning", "vague-link-text", 'html line 1, <a href="https://x.org">')]),
    ("here within a longer text", checks.check_link_text, '<a href="https://x.org">read the report here</a>',
     None, []),
    ("image link with alt", checks.check_link_text, '<a href="https://x.org"><img src="a" alt="Our report"></a>',
     None, []),
    # headings
    ("headings present", checks.check_headings, "<h1>News</h1><h2>Training</h2>", None, []),
    ("no headings", checks.check_headings, "<p>News</p>", None, [("warning", "no-headings", "html")]),
    ("empty heading", checks.check_headings, "<h1>News</h1>\n<h2> </h2>", None,
     [("error", "empty-heading", "html line 2, <h2>")]),
    ("heading with only an image alt", checks.check_headings, '<h1><img src="a" alt="Partnership"></h1>', None, []),
    # text part
    ("text given", checks.check_text_part, "<p>x</p>", "Dear reader, news.", []),
    ("empty text", checks.check_text_part, "<p>x</p>", "  \n", [("error", "empty-text-part", "text part")]),
    ("text with broken characters", checks.check_text_part, "<p>x</p>", "Caf\ufffd news",
     [("error", "unreadable-text-part", "text part")]),
    ("text with markup", checks.check_text_part, "<p>x</p>", "<p>Dear reader</p>",
     [("warning", "markup-in-text-part", "text part")]),
    ("text of links only", checks.check_text_part, "<p>x</p>", "{{unsubscribe_url}} -- 123",
     [("error", "wordless-text-part", "text part")]),
    ("derived from html of images only", checks.check_text_part, '<img src="https://x.org/a.png" alt="">', None,
     [("error", "wordless-text-part", "text part (made from the HTML, as no text was given)")]),
    ("derived from html with words", checks.check_text_part, "<p>Dear reader</p>", None, []),
    # links
    ("https, mailto, tel, anchors, placeholders", checks.check_link_schemes, GOOD, None, []),
    ("http link", checks.check_link_schemes, '<a href="http://x.org">the report</a>', None,
     [("warning", "insecure-link", 'html line 1, <a href="http://x.org">')]),
    ("javascript link", checks.check_link_schemes, '<a href=" JavaScript:alert(1)">x</a>', None,
     [("error", "script-link", 'html line 1, <a href=" JavaScript:alert(1)">')]),
    ("relative link", checks.check_link_schemes, '<a href="/report">x</a>', None,
     [("error", "relative-link", 'html line 1, <a href="/report">')]),
    ("http image", checks.check_link_schemes, '<img src="http://x.org/a.png" alt="">', None,
     [("warning", "insecure-link", 'html line 1, <img src="http://x.org/a.png" alt="">')]),
    # placeholders
    ("known placeholders", checks.check_placeholders, GOOD, "Hi {{ name }} {{unsubscribe_url}}", []),
    ("unknown placeholder", checks.check_placeholders, "<p>\nHi {{first_name}}</p>", None,
     [("error", "unknown-placeholder", "html line 2")]),
    ("unknown placeholder in text", checks.check_placeholders, "<p>Hi</p>", "Hi\n\n{{ surname }}",
     [("error", "unknown-placeholder", "text part line 3")]),
    # unsubscribe link
    ("unsubscribe link present", checks.check_unsubscribe_link, GOOD, None, []),
    ("no unsubscribe link", checks.check_unsubscribe_link, "<p>Hi {{name}}</p>", None,
     [("error", "no-unsubscribe-link", "html")]),
    ("no unsubscribe link in the given text", checks.check_unsubscribe_link, GOOD, "Hi",
     [("warning", "no-unsubscribe-link-in-text", "text part")]),
]


@pytest.mark.parametrize(("check", "html", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_check(check: Check, html: str, text: str | None, expected: list[tuple[str, str, str]]) -> None:
    assert _codes(check, html, text) == expected


@pytest.mark.parametrize(
    ("padding", "expected"),
    [
        (90_000, []),
        (96_000, ["near-gmail-clipping"]),
        (103_000, ["gmail-clipping"]),
        # '=' becomes '=3D' in quoted-printable: 40,000 of them are 120,000 bytes as sent.
        ("=" * 40_000, ["gmail-clipping"]),
    ],
)
def test_size_is_measured_as_sent(padding: int | str, expected: list[str]) -> None:
    filler = "x" * padding if isinstance(padding, int) else padding
    findings = checks.check_size(draft_of(f"<p>{filler}</p>", None))
    assert [f.code for f in findings] == expected
    assert all(f.where.startswith("html part, ") and "quoted-printable" in f.where for f in findings)


def test_a_good_edition_has_no_findings() -> None:
    assert [f for check in checks.CHECKS for f in check(draft_of(GOOD, None))] == []


async def test_check_over_http_lists_findings_errors_first_and_writes_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    html = '<html>\n<body>\n<p>Hi {{firstname}}</p>\n<a href="http://x.org">click here</a>\n<img src="https://x.org/a">'
    response = await client.post("/v1/editions/check", headers=admin_headers,
                                 json={"subject": "Draft", "html": html, "lists": ["news"]})
    assert response.status_code == 200, response.text
    findings = response.json()["findings"]
    levels = [f["level"] for f in findings]
    assert levels == sorted(levels, key=lambda level: level != "error"), "errors first"
    assert {f["code"] for f in findings} == {
        "image-without-alt", "no-language", "vague-link-text", "no-headings", "insecure-link",
        "unknown-placeholder", "no-unsubscribe-link",
    }
    for finding in findings:
        assert set(finding) == {"level", "code", "message", "where"}
        assert finding["message"].endswith(".")
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM editions") == 0
    finally:
        await conn.close()


async def test_check_refuses_what_posting_refuses_and_needs_a_key(client: Client, admin_headers: dict[str, str]) -> None:
    bad = await client.post("/v1/editions/check", headers=admin_headers, json={"subject": "x", "html": "<p>x</p>",
                                                                               "colour": "red"})
    assert bad.status_code == 422
    assert "colour" in bad.json()["detail"]
    assert (await client.post("/v1/editions/check", json={"subject": "x", "html": "<p>x</p>"})).status_code == 401
