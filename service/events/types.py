"""The event types other services can subscribe to, in one place."""

from __future__ import annotations

from typing import Final, Literal, get_args

EventType = Literal[
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.erased",
    "bounce.hard",
    "bounce.soft",
    "complaint",
    "edition.done",
    "edition.paused",
]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

# A counted bounce or a complaint, by the kind the classifier gave it (service/bounces/classify.py).
BOUNCE_EVENTS: Final[dict[str, EventType]] = {"hard": "bounce.hard", "soft": "bounce.soft", "complaint": "complaint"}
