"""The edition check: problems a reader would meet, found before anyone gets the edition.

The HTML is read once with the standard library's ``html.parser`` into a small
outline (the ``<html>`` tag, images, links, headings, each with its line), and
every check is one function over that outline.  Each finding says, for the
person who wrote the edition, what is wrong and where: ``html line 12, <img
src="…">``, or ``text part``.

The size check measures the HTML part as the composer sends it, quoted-printable
encoded (service/mail/compose.py), because that is what Gmail counts
towards its 102 KB clipping limit; the per-reader values (name, links) add a
little more to every copy.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Literal

import msgspec

from ..mail.compose import PLACEHOLDERS
from ..mail.compose import _derive_text as derive_text
from .schemas import EditionIn

Level = Literal["error", "warning"]
GMAIL_CLIP_BYTES = 102 * 1024
"""Gmail shows "[Message clipped]" and hides the rest, unsubscribe link included, past this size."""
_NEAR_CLIP = 0.9
_VAGUE_LINK_TEXT = frozenset({"click here", "here", "read more", "this link", "click", "more", "link",
                              "click this link", "learn more", "more info"})
_SAFE_SCHEMES = ("https:", "mailto:", "tel:")
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:")
_TEMPLATE_TAG = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Web and mail addresses in the text part are not words a reader can read.
_ADDRESSES = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|mailto:|tel:)\S*", re.IGNORECASE)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SHOWN = 60  # characters of a tag shown in ``where``


class Finding(msgspec.Struct, kw_only=True):
    """One problem: how bad, a stable code, a sentence for the editor, and where it is."""

    level: Level
    code: str
    message: str
    where: str


class CheckReport(msgspec.Struct, kw_only=True):
    """Every finding, errors first; an empty list means nothing was found."""

    findings: list[Finding]


class Element(msgspec.Struct, kw_only=True):
    """A tag of interest: its line, the tag as written, its attributes and (for a, h1–h6) its text."""

    line: int
    tag: str
    source: str
    attrs: dict[str, str | None]
    text: str = ""

    @property
    def where(self) -> str:
        """``html line N, <tag …>``, shortened."""
        shown = self.source if len(self.source) <= _SHOWN else self.source[: _SHOWN - 1] + "…>"
        return f"html line {self.line}, {shown}"


class Outline(msgspec.Struct, kw_only=True):
    """What the checks need to know of the HTML."""

    html_tag: Element | None = None
    images: list[Element] = msgspec.field(default_factory=list)
    links: list[Element] = msgspec.field(default_factory=list)
    headings: list[Element] = msgspec.field(default_factory=list)
    tags: int = 0


class _Reader(HTMLParser):
    """Collects an :class:`Outline`; text inside a link or heading goes to that element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = Outline()
        self._open: list[Element] = []  # the links and headings being read, innermost last

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element:
        return Element(line=self.getpos()[0], tag=tag, source=(self.get_starttag_text() or f"<{tag}>").strip(),
                       attrs=dict(attrs))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.outline.tags += 1
        if tag == "html" and self.outline.html_tag is None:
            self.outline.html_tag = self._element(tag, attrs)
        elif tag == "img":
            image = self._element(tag, attrs)
            self.outline.images.append(image)
            for element in self._open:  # an image's alt is the text of the link or heading it is in
                element.text += " " + (image.attrs.get("alt") or "")
        elif tag == "a" or tag in _HEADINGS:
            element = self._element(tag, attrs)
            (self.outline.links if tag == "a" else self.outline.headings).append(element)
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "a" or tag in _HEADINGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def outline(html: str) -> Outline:
    """Read ``html`` with the standard library's forgiving parser."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.outline


class Draft(msgspec.Struct, kw_only=True):
    """An edition as the checks see it: its HTML, outline and the text part readers will get."""

    html: str
    outline: Outline
    text: str
    text_given: bool


def _finding(level: Level, code: str, message: str, where: str) -> Finding:
    return Finding(level=level, code=code, message=message, where=where)


def _words(text: str) -> str:
    return " ".join(text.split())


def check_image_alt(draft: Draft) -> list[Finding]:
    """Images without ``alt``: a screen reader reads out the file name instead (``alt=""`` marks decoration)."""
    return [
        _finding("error", "image-without-alt",
                 "This image has no alternative text, so people using a screen reader hear its file name. "
                 'Describe it in alt="…", or write alt="" if it is only decoration.', image.where)
        for image in draft.outline.images if "alt" not in image.attrs
    ]


def check_lang(draft: Draft) -> list[Finding]:
    """No ``lang`` on ``<html>``: screen readers may read the edition in the wrong language's voice."""
    tag = draft.outline.html_tag
    if tag is not None and (tag.attrs.get("lang") or "").strip():
        return []
    where = tag.where if tag is not None else "html line 1 (there is no <html> tag)"
    return [_finding("error", "no-language",
                     'The edition does not say which language it is in, so screen readers may pronounce it '
                     'wrongly. Start it with <html lang="en"> (or the language it is written in).', where)]


def check_link_text(draft: Draft) -> list[Finding]:
    """Links whose whole text is "click here", "read more" and the like: out of context they say nothing."""
    return [
        _finding("warning", "vague-link-text",
                 f'The link text "{_words(link.text)}" does not say where the link goes. People who jump '
                 "from link to link hear only this; name the destination instead, e.g. \"the March report\".",
                 link.where)
        for link in draft.outline.links if _words(link.text).lower().strip(".:!…") in _VAGUE_LINK_TEXT
    ]


def check_headings(draft: Draft) -> list[Finding]:
    """No heading at all (a warning), or a heading with nothing in it (an error)."""
    headings = draft.outline.headings
    if not headings:
        return [_finding("warning", "no-headings",
                         "The edition has no headings (h1 to h6). People using screen readers move through a "
                         "newsletter by its headings; give each story one.", "html")]
    return [
        _finding("error", "empty-heading",
                 "This heading is empty: a screen reader announces a heading and then says nothing.", heading.where)
        for heading in headings if not heading.text.strip()
    ]


def check_text_part(draft: Draft) -> list[Finding]:
    """The plain-text part is empty, holds no words, carries HTML markup or unreadable characters."""
    where = "text part" if draft.text_given else "text part (made from the HTML, as no text was given)"
    text = draft.text
    if not text.strip():
        return [_finding("error", "empty-text-part",
                         "The plain-text version is empty. Some people read mail as plain text only, and spam "
                         "filters distrust mail without one.", where)]
    if "\ufffd" in text or any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return [_finding("error", "unreadable-text-part",
                         "The plain-text version contains characters that cannot be displayed (broken encoding "
                         "or control characters).", where)]
    if not any(c.isalpha() for c in _ADDRESSES.sub("", _TEMPLATE_TAG.sub("", text))):
        return [_finding("error", "wordless-text-part",
                         "The plain-text version has no words in it, only links or symbols: readers of plain "
                         "text would see nothing of the edition.", where)]
    if draft.text_given and outline(text).tags:
        return [_finding("warning", "markup-in-text-part",
                         "The plain-text version contains HTML tags, which plain-text readers see as they are.",
                         where)]
    return []


def _encoded_html_size(html: str) -> int:
    """The HTML part's size as the composer sends it: quoted-printable with CRLF line ends."""
    return len(binascii.b2a_qp(re.sub(r"\r\n?", "\n", html).encode(), istext=True).replace(b"\n", b"\r\n"))


def check_size(draft: Draft) -> list[Finding]:
    """Over (or near) Gmail's 102 KB clipping size, measured on the quoted-printable HTML part."""
    size = _encoded_html_size(draft.html)
    shown = f"html part, {size / 1024:.1f} KB as sent (quoted-printable)"
    if size > GMAIL_CLIP_BYTES:
        return [_finding("error", "gmail-clipping",
                         f"The edition is {size / 1024:.0f} KB as sent; Gmail cuts messages over 102 KB and hides "
                         "the rest, including the unsubscribe link. Shorten it or move content to the web.", shown)]
    if size > GMAIL_CLIP_BYTES * _NEAR_CLIP:
        return [_finding("warning", "near-gmail-clipping",
                         f"The edition is {size / 1024:.0f} KB as sent, close to the 102 KB at which Gmail cuts "
                         "messages; each reader's name and links add a little more.", shown)]
    return []


def _is_placeholder(url: str) -> bool:
    return bool(_TEMPLATE_TAG.fullmatch(url.strip()))


def check_link_schemes(draft: Draft) -> list[Finding]:
    """Links and images that are not https (mailto:, tel:, #anchors and ``{{placeholders}}`` are fine)."""
    found: list[Finding] = []
    for element, attr in [*((a, "href") for a in draft.outline.links), *((i, "src") for i in draft.outline.images)]:
        url = (element.attrs.get(attr) or "").strip()
        lowered = "".join(url.split()).lower()  # browsers ignore spaces and tabs inside a scheme
        if not url or url.startswith("#") or _is_placeholder(url) or lowered.startswith(_SAFE_SCHEMES):
            continue
        what = "link" if attr == "href" else "image"
        if lowered.startswith(_SCRIPT_SCHEMES):
            found.append(_finding("error", "script-link",
                                  f"This {what} runs code ({lowered.split(':')[0]}:) instead of opening a page; "
                                  "mail programs block it and spam filters penalise it.", element.where))
        elif lowered.startswith("http:"):
            found.append(_finding("warning", "insecure-link",
                                  f"This {what} uses http:, not https:. Browsers warn about such pages, and the "
                                  "web view of the edition will not show http images.", element.where))
        else:
            found.append(_finding("error", "relative-link",
                                  f"This {what} has no https:// address ({url[:60]}); it cannot work from an "
                                  "inbox. Use the full address, starting https://.", element.where))
    return found


def _template_tags(source: str) -> list[tuple[int, str, str]]:
    """``(line, name, as written)`` of every ``{{…}}`` in ``source``."""
    return [
        (source.count("\n", 0, found.start()) + 1, found[1], found[0]) for found in _TEMPLATE_TAG.finditer(source)
    ]


def check_placeholders(draft: Draft) -> list[Finding]:
    """``{{placeholders}}`` the composer does not know: readers would see them as written."""
    known = ", ".join("{{" + name + "}}" for name in sorted(PLACEHOLDERS))
    parts = [("html", draft.html)] + ([("text part", draft.text)] if draft.text_given else [])
    return [
        _finding("error", "unknown-placeholder",
                 f"{written} is not a placeholder Letterbox fills in, so readers would see it as written. "
                 f"The ones it knows are {known}.", f"{part} line {line}")
        for part, source in parts
        for line, name, written in _template_tags(source) if name not in PLACEHOLDERS
    ]


def check_unsubscribe_link(draft: Draft) -> list[Finding]:
    """No ``{{unsubscribe_url}}`` in the body: the law and the mailbox providers want one readers can see."""
    found: list[Finding] = []
    if not any(name == "unsubscribe_url" for _, name, _ in _template_tags(draft.html)):
        found.append(_finding("error", "no-unsubscribe-link",
                              "The edition has no unsubscribe link in its body. Add a link to {{unsubscribe_url}} "
                              "so readers can leave without marking it as spam.", "html"))
    if draft.text_given and not any(name == "unsubscribe_url" for _, name, _ in _template_tags(draft.text)):
        found.append(_finding("warning", "no-unsubscribe-link-in-text",
                              "The plain-text version has no unsubscribe link; add {{unsubscribe_url}} to it.",
                              "text part"))
    return found


CHECKS: tuple[Callable[[Draft], list[Finding]], ...] = (
    check_image_alt,
    check_lang,
    check_link_text,
    check_headings,
    check_text_part,
    check_size,
    check_link_schemes,
    check_placeholders,
    check_unsubscribe_link,
)


def draft_of(html: str, text: str | None) -> Draft:
    """The draft the checks read; without ``text`` the text part is made as the composer makes it."""
    return Draft(html=html, outline=outline(html), text=derive_text(html) if text is None else text,
                 text_given=text is not None)


def check_edition(body: EditionIn) -> CheckReport:
    """Run every check on a posted edition; errors come before warnings, each in document order."""
    draft = draft_of(body.html, body.text)
    findings = [finding for check in CHECKS for finding in check(draft)]
    findings.sort(key=lambda f: f.level != "error")
    return CheckReport(findings=findings)
