"""``/console/``: editions in flight, the last 30 days, and readers by agency and role over time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg
import msgspec
from litestar import get
from litestar.response import Template

from ...db.queries import Queries
from ..access import requires_viewer
from ..charts import Chart, bar_chart, line_chart
from ..web import render
from .common import Conn, Db

DAYS = 30
MONTHS = 12


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """An edition not yet finished and how far its copies have got."""

    id: int
    subject: str
    status: str
    status_reason: str | None
    recipients: int
    sent: int
    failed: int
    skipped: int
    queued: int

    @property
    def done(self) -> int:
        """Copies with a final result."""
        return self.sent + self.failed + self.skipped

    @property
    def percent(self) -> int:
        """Share of copies with a final result, rounded down (100 only when all are done)."""
        total = self.done + self.queued
        return 100 * self.done // total if total else 0


class DayFigures(msgspec.Struct, frozen=True):
    """One day's copies sent, bounces, complaints and unsubscribes."""

    day: date
    sent: int
    bounced: int
    complained: int
    unsubscribed: int


class Series(msgspec.Struct, frozen=True):
    """Readers in one agency (or role) at the end of each month."""

    name: str
    values: list[int]


class ReadersOverTime(msgspec.Struct, frozen=True):
    """Readers by agency and by role at the end of each of the last months."""

    months: list[date]
    by_agency: list[Series]
    by_role: list[Series]


class Dashboard(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the dashboard shows."""

    in_flight: list[Progress]
    days: list[DayFigures]
    readers: ReadersOverTime
    sent_chart: Chart
    events_chart: Chart
    agency_chart: Chart
    role_chart: Chart


async def in_flight(conn: asyncpg.Connection, q: Queries) -> list[Progress]:
    """Editions scheduled, queued, sending or paused, with their copies by status."""
    return [msgspec.convert(dict(r), Progress) for r in await conn.fetch(q["console-editions-in-flight"])]


async def last_days(conn: asyncpg.Connection, q: Queries, today_start: datetime, days: int = DAYS) -> list[DayFigures]:
    """The figures of the last ``days`` days, today's counted live; finished days are counted once and kept."""
    today = today_start.date()
    first = today - timedelta(days=days - 1)
    await conn.execute(q["daily-figures-count"], first, today - timedelta(days=1))
    kept = {r["day"]: r for r in await conn.fetch(q["daily-figures-range"], first, today)}
    figures = [
        DayFigures(day, *(kept[day][k] for k in ("sent", "bounced", "complained", "unsubscribed")))
        if day in kept else DayFigures(day, 0, 0, 0, 0)
        for day in (first + timedelta(days=n) for n in range(days - 1))
    ]
    live = await conn.fetchrow(q["daily-figures-live"], today_start)
    assert live is not None, "an aggregate returns one row"
    figures.append(DayFigures(today, live["sent"], live["bounced"], live["complained"], live["unsubscribed"]))
    return figures


def months_back(month: date, count: int) -> list[date]:
    """The first days of the ``count`` months ending with ``month``, oldest first."""
    index = month.year * 12 + month.month - 1
    return [date((index - n) // 12, (index - n) % 12 + 1, 1) for n in range(count - 1, -1, -1)]


async def readers_over_time(conn: asyncpg.Connection, q: Queries, this_month: date,
                            months: int = MONTHS) -> ReadersOverTime:
    """Readers by agency and by role at the end of each of the last ``months`` months.

    Finished months are counted once, when first shown, and kept; the month under way is the
    readers active now.
    """
    month_list = months_back(this_month, months)
    await conn.execute(q["monthly-readers-count"], month_list[0], month_list[-2])
    groups: dict[tuple[bool, str], dict[date, int]] = {}
    for row in await conn.fetch(q["monthly-readers-range"], month_list[0], month_list[-2]):
        groups.setdefault((row["is_role"], _name(row["is_role"], row["name"])), {})[row["month"]] = row["readers"]
    names = {(False, r["slug"]): r["name"] for r in await conn.fetch(q["agency-list"])}
    names |= {(True, r["slug"]): r["name"] for r in await conn.fetch(q["role-list"])}
    for row in await conn.fetch(q["console-readers-now"]):
        term = row["role"] if row["is_role"] else row["agency"]
        name = names.get((row["is_role"], term), term)
        groups.setdefault((row["is_role"], _name(row["is_role"], name)), {})[this_month] = row["readers"]
    series = {
        key: Series(key[1], [counts.get(month, 0) for month in month_list]) for key, counts in sorted(groups.items())
    }
    return ReadersOverTime(
        months=month_list,
        by_agency=[s for (is_role, _), s in series.items() if not is_role],
        by_role=[s for (is_role, _), s in series.items() if is_role],
    )


def _name(is_role: bool, name: str | None) -> str:
    return name or ("No role given" if is_role else "No organisation given")


async def load_dashboard(conn: asyncpg.Connection, q: Queries) -> Dashboard:
    """The dashboard's figures and charts."""
    clock = await conn.fetchrow(q["daily-figures-today"])
    assert clock is not None, "a SELECT without FROM returns one row"
    days = await last_days(conn, q, clock["today_start"])
    readers = await readers_over_time(conn, q, clock["this_month"])
    day_labels = [f"{d.day:%d %b}" for d in days]
    month_labels = [f"{m:%b %Y}" for m in readers.months]
    return Dashboard(
        in_flight=await in_flight(conn, q),
        days=days,
        readers=readers,
        sent_chart=bar_chart(
            "sent-chart", f"Copies sent per day, last {DAYS} days",
            f"Bars, one per day from {day_labels[0]} to {day_labels[-1]} (today, so far); "
            f"{sum(d.sent for d in days):,} copies in all.",
            day_labels, [d.sent for d in days]),
        events_chart=line_chart(
            "events-chart", f"Bounces, complaints and unsubscribes per day, last {DAYS} days",
            f"Three lines, one per kind, from {day_labels[0]} to {day_labels[-1]}.",
            day_labels, [("Bounced", [d.bounced for d in days]), ("Complained", [d.complained for d in days]),
                         ("Unsubscribed", [d.unsubscribed for d in days])]),
        agency_chart=_readers_chart("agency-chart", "Readers by organisation, end of each month",
                                    month_labels, readers.by_agency),
        role_chart=_readers_chart("role-chart", "Readers by role, end of each month", month_labels, readers.by_role),
    )


def _readers_chart(chart_id: str, title: str, labels: list[str], series: list[Series]) -> Chart:
    span = f"from {labels[0]} to {labels[-1]}" if labels else "with no months yet"
    return line_chart(chart_id, title, f"{len(series)} lines, one per group, {span}.", labels,
                      [(s.name, s.values) for s in series])


@get("/", guards=[requires_viewer], include_in_schema=False)
async def dashboard_page(conn: Conn, db: Db) -> Template:
    """The dashboard."""
    return render("console/dashboard.html", {"title": "Dashboard", "view": await load_dashboard(conn, db.q)})


@get("/progress", guards=[requires_viewer], include_in_schema=False)
async def progress_fragment(conn: Conn, db: Db) -> Template:
    """The dashboard's editions in flight alone: what its small script swaps in every few seconds."""
    return render("console/_in_flight.html", {"in_flight": await in_flight(conn, db.q)})


handlers = [dashboard_page, progress_fragment]
