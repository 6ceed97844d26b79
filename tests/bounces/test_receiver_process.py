"""The bounce receiver as the processes run it: inside `serve`, and alone as `bounce-receiver`."""

from __future__ import annotations

import signal
import smtplib
import time

import pytest

from service.settings import Settings
from tests.support.processes import start_letterbox
from tests.support.smtp import free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow


def _refuses_strangers(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client = smtplib.SMTP("127.0.0.1", port, timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with client:
        client.ehlo()
        client.mail("mailer-daemon@example.net")
        code, _ = client.rcpt("someone@example.org")
        assert code == 550
        code, _ = client.rcpt("bounce+forged.token@news.example.org")
        assert code == 550


@pytest.mark.parametrize("command", [("serve", "--no-worker"), ("bounce-receiver",)])
def test_the_receiver_listens_when_a_port_is_set(settings: Settings, command: tuple[str, ...]) -> None:
    smtp_port = free_port()
    process = start_letterbox(settings, *command, port=free_port(), bounce_smtp_port=smtp_port)
    try:
        _refuses_strangers(smtp_port)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_bounce_receiver_without_a_port_stops_with_status_2(settings: Settings) -> None:
    process = start_letterbox(settings, "bounce-receiver")
    assert process.wait(timeout=60) == 2
    assert process.stderr is not None
    assert b"LETTERBOX_BOUNCE_SMTP_PORT" in process.stderr.read()
