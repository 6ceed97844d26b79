"""Group commit: work handed over while a batch runs waits for the next batch, and each caller its result.

Under load most of what a sign-up cost PostgreSQL was paid per statement and per
commit (parse, plan, triggers, the WAL flush), not per row.  A :class:`Batches`
runs its batches one at a time on a task of its own: whatever arrived while
one ran goes into the next, so a quiet process still runs each item at once
(a batch of one) and a busy one pays those costs once per batch.  A batch
that fails is run again one item at a time, so one bad item fails alone.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from ..settings import Settings
from .pool import Database

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """Runs ``run`` over the items waiting, at most ``size`` at a time, one batch after another."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], size: int) -> None:
        self._run = run
        self._size = size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Hand ``item`` over and wait for its result, or the exception it raised (run alone after its batch failed)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None:
            # A context of its own: the batch is every caller's, not the first caller's (its log fields).
            self._task = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._size], self._waiting[self._size :]
                if len(batch) == 1:
                    await self._run_alone(*batch[0])
                    continue
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception:
                    # The batch wrote nothing: one at a time, only what fails alone fails.
                    for item, future in batch:
                        await self._run_alone(item, future)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
        finally:
            self._task = None
            for _, future in batch + self._waiting:  # undone only when this task was cancelled: nobody waits forever
                future.cancel()
            self._waiting = []

    async def _run_alone(self, item: Item, future: asyncio.Future[Result]) -> None:
        try:
            (result,) = await self._run([item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            _settle(future, result)


def _settle(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():  # a caller that gave up (its request was cancelled) is skipped
        future.set_result(result)


@dataclass(frozen=True, eq=False)
class Group(Generic[Item, Result]):
    """A group commit: the statement a batch of items runs (on the database, with the settings), and how
    many items a batch takes at most."""

    run: Callable[[Database, Settings, list[Item]], Awaitable[Sequence[Result]]]
    size: int


class Groups:
    """The group commits of one runtime: a :class:`Batches` for each :class:`Group`, made on first use.

    One per runtime (``runtime.groups``), so the requests one process answers share their batches.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._batches: dict[Group[Any, Any], Batches[Any, Any]] = {}

    async def submit(self, group: Group[Item, Result], item: Item) -> Result:
        """Hand ``item`` to ``group``'s next batch and wait for its result (see :meth:`Batches.submit`)."""
        batches = self._batches.get(group)
        if batches is None:
            db, settings = self._db, self._settings

            async def run(items: list[Item]) -> Sequence[Result]:
                return await group.run(db, settings, items)

            batches = self._batches[group] = Batches(run, group.size)
        # Made above for this same group, so of its types.
        return await cast(Batches[Item, Result], batches).submit(item)
