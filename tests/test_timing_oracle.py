"""The form takes as long for a reader as for a stranger: its timing cannot tell who is subscribed.

A real ``letterbox serve`` over real HTTP (the test client would wait for work done
after the answer, which is the point of the fix), fresh addresses on both sides
(so rate-limit buckets are as new for one as for the other, as for someone probing),
requests interleaved at random so that load on the machine falls on both alike.
The two samples are compared by rank: the probability that a reader's answer took
longer than a stranger's is 0.5 when the form leaks nothing; before the fix it was
about 0.9.  The bound is wide (about six standard errors), so a busy machine does
not make it flaky.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import time

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.support.processes import Served
from tests.support.seed import seed_readers
from tests.support.smtp import free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

PER_SIDE = 250
WARM_UP = 30
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _later_probability(slower: list[float], faster: list[float]) -> float:
    """P(a value of ``slower`` exceeds one of ``faster``), ties counting half: the Mann-Whitney U over n·m."""
    wins = sum((a > b) + 0.5 * (a == b) for a in slower for b in faster)
    return wins / (len(slower) * len(faster))


def _post_all(base_url: str, plan: list[tuple[str, str]]) -> tuple[dict[str, list[float]], set[str]]:
    timings: dict[str, list[float]] = {"reader": [], "stranger": []}
    pages: set[str] = set()
    with httpx.Client(base_url=base_url) as client:
        token = html.unescape(_CSRF.findall(client.get("/subscribe").text)[0])
        for index, (kind, email) in enumerate(plan):
            form = {"csrf": token, "email": email, "name": "", "agency": "", "role": "", "website": "",
                    "lists": "news"}
            started = time.perf_counter()
            answer = client.post("/subscribe", data=form)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200, answer.text
            pages.add(answer.text)
            if index >= WARM_UP:
                timings[kind].append(elapsed)
    return timings, pages


async def test_the_form_costs_a_reader_what_it_costs_a_stranger(settings: Settings) -> None:
    url = settings.database_url or ""
    readers = await seed_readers(url, PER_SIDE + WARM_UP)
    strangers = [f"stranger{i}@example.org" for i in range(PER_SIDE + WARM_UP)]
    plan = [("reader", e) for e in readers] + [("stranger", e) for e in strangers]
    random.Random(20261130).shuffle(plan)
    served = Served(settings, "--no-worker", port=free_port(),
                    subscribe_limit_per_client=100_000, subscribe_limit_per_address=100_000)
    try:
        await asyncio.to_thread(served.wait_ready)
        timings, pages = await asyncio.to_thread(_post_all, served.base_url, plan)
        conn = await asyncpg.connect(url)
        try:
            for _ in range(100):  # the decisions are made after the answers
                if await conn.fetchval("SELECT count(*) FROM system_mails") == len(strangers):
                    break
                await asyncio.sleep(0.1)
            mailed = {r["recipient"] for r in await conn.fetch("SELECT recipient FROM system_mails")}
        finally:
            await conn.close()
    finally:
        served.stop()
    assert len(pages) == 1, "the same page for everyone"
    assert mailed == set(strangers), "strangers get a confirmation mail, readers nothing new"
    reader, stranger = sorted(timings["reader"]), sorted(timings["stranger"])
    summary = (f"median reader {reader[len(reader) // 2] * 1000:.2f} ms, "
               f"stranger {stranger[len(stranger) // 2] * 1000:.2f} ms")
    later = _later_probability(timings["stranger"], timings["reader"])
    print(f"P(stranger slower) = {later:.2f}; {summary}")
    assert 0.35 < later < 0.65, f"P(stranger slower) = {later:.2f}; {summary}"
