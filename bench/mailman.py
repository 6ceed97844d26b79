"""Mailman beside Letterbox: personal copies per second into the same sink, in one run.

GNU Mailman 3.3.10 (not a Letterbox dependency: its own virtualenv under
``var/mailman-venv``, made here on first use from PyPI) sends one personalised,
VERP'd copy of a post to each member of a list into ``bench/smtp_sink.py``;
Letterbox then sends the same newsletter to as many readers into the same sink
(``bench/send.py``'s service run). Mailman's rate is counted from its first copy
to its last, so its list set-up and pipeline are not held against it; Letterbox's
from the POST to the last copy.

    .venv/bin/python -m bench.mailman [--members 2000] [--connections 4]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import bench_database, seed
from bench.send import sample_message, service_run
from bench.smtp_sink import Sink

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "mailman-venv"
MAILMAN = "mailman==3.3.10"


def ensure_mailman() -> Path:
    """The ``mailman`` command of the benchmark's own virtualenv, installed on first use."""
    command = VENV / "bin" / "mailman"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", MAILMAN], check=True, timeout=1800)
    return command


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, smtp_port: int) -> Path:
    """A Mailman configuration: its files under ``folder``, copies to the sink, VERP per copy,
    only the runners a post needs on its way out."""
    config = folder / "mailman.cfg"
    quiet = "\n".join(f"[runner.{name}]\nstart: no\n" for name in ("archive", "bounces", "command", "digest",
                                                                   "lmtp", "nntp", "rest", "task"))
    config.write_text(f"""\
[mailman]
layout: bench
site_owner: owner@example.org

[paths.bench]
var_dir: {folder / "var"}

[mta]
incoming: mailman.mta.null.NullMTA
smtp_host: 127.0.0.1
smtp_port: {smtp_port}
lmtp_port: {free_port()}
verp_personalized_deliveries: yes
verp_delivery_interval: 1

[webservice]
port: {free_port()}

[logging.smtp]
every: no
success: no

{quiet}
""")
    return config


def post_file(folder: Path) -> Path:
    """The newsletter bench/send.py sends, as a member's post to the list."""
    message = email.message_from_bytes(sample_message()[0], policy=email.policy.SMTP)
    for name in ("From", "To", "Reply-To", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID"):
        del message[name]
    message["From"] = "reader1@example.org"
    message["To"] = "news@example.org"
    message["Message-ID"] = "<mailman-bench@example.org>"
    path = folder / "post.eml"
    path.write_bytes(message.as_bytes())
    return path


def mailman_rate(sink: Sink, members: int, timeout: float) -> tuple[float, float]:
    """Run Mailman until every member's copy reached the sink; (copies/s first to last copy, set-up s)."""
    command = ensure_mailman()
    folder = Path(tempfile.mkdtemp(prefix="mailman-bench-", dir=ROOT / "var"))
    try:
        config = write_config(folder, sink.port)
        started = time.perf_counter()
        # -I: not bench/ first on the path, where this file would pass for the mailman package.
        subprocess.run([str(VENV / "bin" / "python"), "-I", str(ROOT / "bench" / "mailman_setup.py"), str(config),
                        str(members), str(post_file(folder))], check=True, timeout=timeout)
        setup = time.perf_counter() - started
        sink.reset()
        mailman = [str(command), *(["--run-as-root"] if os.geteuid() == 0 else []), "-C", str(config)]
        subprocess.run([*mailman, "start"], check=True, timeout=120)
        try:
            deadline = time.monotonic() + timeout
            while sink.count == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            first = time.perf_counter()
            while sink.count < members and time.monotonic() < deadline:
                time.sleep(0.01)
            last = time.perf_counter()
            if sink.count < members:
                raise RuntimeError(f"Mailman sent {sink.count} of {members} copies within {timeout:.0f} s")
        finally:
            subprocess.run([*mailman, "stop"], check=False, timeout=120)
            pid_file = folder / "var" / "master.pid"
            deadline = time.monotonic() + 60
            while pid_file.exists() and time.monotonic() < deadline:  # stop only signals the master
                time.sleep(0.1)
        return (members - 1) / (last - first), setup
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Run Mailman, then Letterbox, into one sink; print both rates."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    sink = Sink()
    try:
        mailman, setup = mailman_rate(sink, args.members, args.timeout)
        with bench_database() as url:
            asyncio.run(seed(url, args.members))
            letterbox, _, _, _ = asyncio.run(service_run(url, sink, args.members, args.connections, "mailman", None))
        print(f"GNU Mailman 3.3.10, personal VERP'd copies {mailman:>8,.0f} copies/s  "
              f"({args.members:,} members; list set-up {setup:.0f} s not counted)")
        print(f"letterbox, POST to last copy               {letterbox:>8,.0f} copies/s  "
              f"= {letterbox / mailman:.1f}× Mailman")
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
