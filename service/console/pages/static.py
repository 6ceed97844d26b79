"""The data pages' own static files: their stylesheet and the one script (live progress; the pages work
without it). Served from our own origin: the CSP allows nothing else, and nothing inline."""

from __future__ import annotations

import functools
from pathlib import Path

from litestar import Response, get

from ..signin import PUBLIC

FOLDER = Path(__file__).resolve().parents[2] / "templates" / "console"


@functools.cache
def _read(name: str) -> bytes:
    return (FOLDER / name).read_bytes()


def _static(name: str, media_type: str) -> Response[bytes]:
    return Response(_read(name), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


@get("/static/progress.js", opt=PUBLIC, media_type="text/javascript", include_in_schema=False,
     sync_to_thread=False)
def progress_script() -> Response[bytes]:
    """Swaps in fresh progress every few seconds while an edition is being sent."""
    return _static("progress.js", "text/javascript")


@get("/static/pages.css", opt=PUBLIC, media_type="text/css", include_in_schema=False, sync_to_thread=False)
def pages_stylesheet() -> Response[bytes]:
    """Charts, progress bars, status tags and the preview frame."""
    return _static("pages.css", "text/css")


handlers = [progress_script, pages_stylesheet]
