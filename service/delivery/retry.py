"""Exponential back-off with jitter for temporary delivery failures."""

from __future__ import annotations

import random

from ..settings import Settings


def backoff_delay(attempt: int, settings: Settings) -> float:
    """Seconds to wait before attempt ``attempt + 1``: base·2^(attempt-1), capped, with ±50 % jitter.

    Jitter spreads retries so that a recovering SMTP server is not hit by the
    whole queue at the same instant.
    """
    delay = min(settings.retry_base_seconds * 2 ** max(attempt - 1, 0), settings.retry_max_seconds)
    return float(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
