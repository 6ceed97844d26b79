"""This test process logging as ``letterbox serve`` does, then as it did before."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import structlog

from service.logs import configure_logging
from service.settings import Settings


@contextmanager
def logging_as_served(level: Literal["debug", "info", "warning", "error"] = "info") -> Iterator[None]:
    """JSON lines to standard error at ``level``, as ``serve`` writes them; the previous set-up after.

    The request line's own set-up (service/logs.py) goes back to structlog's path too, so no later
    test writes JSON request lines.
    """
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    configure_logging(Settings(log_format="json", log_level=level))
    try:
        yield
    finally:
        configure_logging(Settings(log_format="console", log_level="info"))
        structlog.configure(**saved)
        root.handlers, root.level = handlers, root_level
