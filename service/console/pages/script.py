"""The console's one script: live progress of editions being sent (the pages work without it)."""

from __future__ import annotations

import functools
from pathlib import Path

from litestar import Response, get

from ..signin import PUBLIC

SCRIPT = Path(__file__).resolve().parents[2] / "templates" / "console" / "progress.js"


@functools.cache
def _script() -> bytes:
    return SCRIPT.read_bytes()


@get("/static/progress.js", opt=PUBLIC, media_type="text/javascript", include_in_schema=False,
     sync_to_thread=False)
def progress_script() -> Response[bytes]:
    """Served from our own origin: the CSP allows scripts from nowhere else, and none inline."""
    return Response(_script(), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


handlers = [progress_script]
