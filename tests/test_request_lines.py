"""The line each HTTP request leaves in the log, as ``serve`` writes it (JSON).

It is rendered without structlog's processor chain and written a loop turn at a
time (service/logs.py), so these tests hold it to what every other line
promises: the same keys, masked paths, the level honoured, nothing lost, the
order kept, and no write larger than a pipe writes atomically.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import structlog

from service.logs import REQUEST_ID, configure_logging, log_request
from service.settings import Settings
from tests.support.serve_logging import logging_as_served


class _Writes:
    """A stand-in standard error that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in "".join(self.writes).splitlines()]


@pytest.fixture
def json_logs() -> Iterator[None]:
    """JSON logs at info, as ``serve`` writes them; the previous set-up comes back after."""
    with logging_as_served("info", hold_lines=True):
        yield


@pytest.fixture
def stderr(json_logs: None, monkeypatch: pytest.MonkeyPatch) -> Callable[[], _Writes]:
    """Swap standard error for a :class:`_Writes`: call it in the test itself, as pytest sets its
    own capture again between the fixtures' set-up and the test."""

    def swap() -> _Writes:
        writes = _Writes()
        monkeypatch.setattr(sys, "stderr", writes)
        return writes

    return swap


def test_a_request_line_has_the_keys_of_every_line_and_a_masked_path(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    log_request("abcdef0123456789", "POST", "/unsubscribe/12-3.SecretSignature0", 200, 1.25)
    log_request("abcdef0123456789", "DELETE", "/v1/suppressions/alice@example.org", 204, 0.5)
    log_request("abcdef0123456789", "GET", "/v1/keys/lbk_0123abcd_TheSecretPartOfAKey", 404, 0.5)
    structlog.get_logger("x").info("other")
    first, second, third, other = writes.lines()
    assert first == {
        "event": "request", "request_id": "abcdef0123456789", "method": "POST", "path": "/unsubscribe/***",
        "status": 200, "ms": 1.25, "process": first["process"], "level": "info", "timestamp": first["timestamp"],
    }
    assert second["path"] == "/v1/suppressions/a***@example.org"
    assert third["path"] == "/v1/keys/lbk_0123abcd_***"
    stamped = datetime.datetime.fromisoformat(str(first["timestamp"]).replace("Z", "+00:00"))
    assert str(first["timestamp"]).endswith("Z") and abs(time.time() - stamped.timestamp()) < 60
    assert first["process"] == os.getpid()
    assert set(other) <= set(first) | {"event"}, "a request line lacks a key other lines have"
    # Every line's stamp has one shape (microseconds always written: fixed width, sortable as text).
    for line in (first, other):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(line["timestamp"])), line
    assert str(first["timestamp"]) <= str(other["timestamp"])


def test_request_lines_follow_the_level(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    configure_logging(Settings(log_format="json", log_level="warning"))
    log_request("abcdef0123456789", "GET", "/healthz", 200, 0.1)
    assert writes.writes == []


async def test_lines_of_one_loop_turn_are_written_together_in_order_and_at_its_end(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    for n in range(5):
        log_request(f"request-{n:04d}", "GET", "/healthz", 200, 0.1)
    held = list(writes.writes)
    await asyncio.sleep(0)
    assert held == [] and len(writes.writes) == 1, "five lines of one turn: one write, after the turn"
    log_request("request-0005", "GET", "/healthz", 200, 0.1)
    structlog.get_logger("x").warning("not held")  # writes what is held first, then itself
    assert [line.get("request_id") for line in writes.lines()][-2:] == ["request-0005", None]
    await asyncio.sleep(0)
    assert [line["event"] for line in writes.lines()] == ["request"] * 6 + ["not held"]
    structlog.get_logger("x").info("held too")  # an info line of ours waits like a request line
    assert [line["event"] for line in writes.lines()][-1] == "not held"
    await asyncio.sleep(0)
    assert [line["event"] for line in writes.lines()][-1] == "held too"


async def test_no_write_is_larger_than_a_pipe_writes_whole(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    long_path = "/v1/lists/" + "x" * 900
    for n in range(40):
        log_request(f"request-{n:04d}", "GET", long_path, 404, 0.1)
    await asyncio.sleep(0)
    assert len(writes.lines()) == 40
    assert all(len(text.encode()) <= 4096 and text.endswith("\n") for text in writes.writes)
    assert len(writes.writes) > 1


def test_outside_a_loop_a_request_line_is_written_at_once(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    log_request("abcdef0123456789", "GET", "/healthz", 200, 0.1)
    assert len(writes.lines()) == 1


def test_any_path_makes_a_line_of_valid_json(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    paths = ['/v1/lists/a"b', "/v1/lists/back\\slash", "/v1/lists/tab\there", "/v1/lists/bücher", "/v1/lists/\x7f"]
    for path in paths:
        log_request("abcdef0123456789", "GET", path, 404, 0.1)
    assert [line["path"] for line in writes.lines()] == paths


def test_every_line_logged_while_a_request_is_answered_carries_its_id(stderr: Callable[[], _Writes]) -> None:
    writes = stderr()
    bound = REQUEST_ID.set("abcdef0123456789")
    try:
        structlog.get_logger("x").info("ours")
        logging.getLogger("library").warning("theirs")
    finally:
        REQUEST_ID.reset(bound)
    structlog.get_logger("x").info("after")
    assert [(line["event"], line.get("request_id")) for line in writes.lines()] == [
        ("ours", "abcdef0123456789"), ("theirs", "abcdef0123456789"), ("after", None)]
