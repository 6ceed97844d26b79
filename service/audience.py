"""Who an edition reaches: the one definition shared by the segment preview and the fan-out.

The audience queries (``audience-count`` in ``sql/queries/subscriptions.sql``, ``audience-fan-out``
in ``deliveries.sql``) carry a marker where the compiled segment filter goes.  The compiled filter
is our own constant SQL text with ``$n`` placeholders; user values only ever travel as parameters.
"""

from __future__ import annotations

FILTER_MARKER = "TRUE /* segment-filter */"


def with_filter(sql: str, fragment: str | None) -> str:
    """Put a compiled filter fragment (or nothing) into an audience query."""
    if FILTER_MARKER not in sql:
        raise ValueError("query has no segment-filter marker")
    return sql if not fragment else sql.replace(FILTER_MARKER, f"({fragment})")
