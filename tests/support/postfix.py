"""A private Postfix (Debian's package) on loopback, between Letterbox and the readers.

The instance has its own configuration, queue and log in a temporary folder and
listens on a free 127.0.0.1 port; the machine's own Postfix (if any) is never
touched.  What it does with mail:

- it relays for loopback clients and speaks SMTPUTF8 (``smtputf8_enable = yes``);
- it refuses every recipient at :data:`REFUSED_DOMAIN` itself, at RCPT, with 550 5.1.1;
- mail for :data:`BOUNCE_DOMAIN` goes to Letterbox's bounce receiver on :attr:`Postfix.bounce_port`
  (so the delivery status notifications Postfix writes reach Letterbox by SMTP);
- everything else goes to :attr:`Postfix.sink`, a real aiosmtpd server offering SMTPUTF8, whose
  scripted replies stand for the readers' mail servers: a 5xx after Postfix accepted the mail makes
  Postfix bounce it, a 4xx makes it retry, warn after :data:`DELAY_WARNING` and give up after
  :data:`QUEUE_LIFETIME`.

Postfix's master runs under :mod:`tests.support.reaper`, which outlives it until every
Postfix process has ended: stopping the fixture leaves no process behind, and a killed
test run takes Postfix with it.  Running as root is required (the master binds and then
runs its helpers as the ``postfix`` user of the package).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.smtp import SmtpSink, free_port

POSTFIX = Path("/usr/sbin/postfix")
POSTCONF = Path("/usr/sbin/postconf")
POSTQUEUE = Path("/usr/sbin/postqueue")
POSTSUPER = Path("/usr/sbin/postsuper")
BOUNCE_DOMAIN = "bounces.example.net"
"""Letterbox's bounce domain in these tests: Postfix hands its mail to the bounce receiver."""
REFUSED_DOMAIN = "refused.example"
"""Postfix itself refuses every recipient here at RCPT (550 5.1.1), before accepting anything."""
DELAY_WARNING = "3s"
QUEUE_LIFETIME = "30s"
# Retry deferred mail every second or two, so that a warning and an expiry happen within the test.
_TIMING = {
    "delay_warning_time": DELAY_WARNING,
    "maximal_queue_lifetime": QUEUE_LIFETIME,
    "bounce_queue_lifetime": QUEUE_LIFETIME,
    "queue_run_delay": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
}
_START_SECONDS = 30.0
_STOP_SECONDS = 30.0

# Only what this instance uses (pickup too: postqueue takes its socket as the sign that Postfix runs),
# none of it chrooted (a chroot would need copies of /etc files).
_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
smtp       unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


def postfix_missing() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not POSTFIX.exists():
        return "needs Debian's postfix at /usr/sbin/postfix (`make postfix` installs it)"
    if os.geteuid() != 0:
        return "needs root: Postfix's master starts as root and drops to the postfix user"
    return None


class Postfix:
    """One private Postfix instance under ``root``; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, root: Path, sink: SmtpSink, *, bounce_port: int) -> None:
        self.root = root
        self.config = root / "config"
        self.queue = root / "queue"
        self.maillog = root / "maillog"
        self.sink = sink
        self.bounce_port = bounce_port
        self.port = free_port()
        self._reaper: subprocess.Popen[bytes] | None = None

    @property
    def smtp_url(self) -> str:
        """``LETTERBOX_SMTP_URL`` for Letterbox to send through this Postfix."""
        return f"smtp://127.0.0.1:{self.port}"

    def _main_cf(self) -> dict[str, str]:
        data = self.root / "data"
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(data),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix.test",
            # Nothing is delivered locally and nothing needs DNS: every domain has a transport.
            "mydestination": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtputf8_enable": "yes",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": f"check_recipient_access texthash:{self.config}/recipient_access",
            "transport_maps": f"texthash:{self.config}/transport",
            # A fresh connection per delivery: the bounce receiver is restarted by every test.
            "smtp_connection_cache_on_demand": "no",
            **_TIMING,
        }

    def _write_config(self) -> None:
        self.config.mkdir()
        main = "".join(f"{name} = {value}\n" for name, value in self._main_cf().items())
        (self.config / "main.cf").write_text(main)
        (self.config / "master.cf").write_text(_MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (self.config / "recipient_access").write_text(f"{REFUSED_DOMAIN} 550 5.1.1 User unknown\n")
        (self.config / "transport").write_text(
            f"{BOUNCE_DOMAIN} smtp:[127.0.0.1]:{self.bounce_port}\n*  smtp:[127.0.0.1]:{self.sink.port}\n"
        )
        # The queue (root-owned; Postfix makes its sub-folders) and the data folder Postfix owns.
        self.queue.mkdir(mode=0o755)
        data = self.root / "data"
        data.mkdir(mode=0o755)
        shutil.chown(data, user="postfix")

    def _postfix_command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(POSTFIX), "-c", str(self.config), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def start(self) -> None:
        """Write the configuration, let ``postfix check`` make the queue, start the master; wait until it listens."""
        self._write_config()
        checked = self._postfix_command("check")
        if checked.returncode != 0:
            raise RuntimeError(f"postfix check failed: {checked.stderr}{self.log()}")
        daemon_directory = subprocess.run(
            [str(POSTCONF), "-c", str(self.config), "-h", "daemon_directory"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        # The master runs in the foreground (no -w: it must stay the reaper's child).
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "tests.support.reaper", f"{daemon_directory}/master", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
            # The master passes MAIL_CONFIG on to its helpers; set here, it marks the master too.
            env={**os.environ, "MAIL_CONFIG": str(self.config)},
        )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._reaper.poll() is not None:
                raise RuntimeError(f"the Postfix master exited with {self._reaper.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Postfix did not listen within {_START_SECONDS:.0f} s: {self.log()}")

    def stop(self) -> None:
        """SIGTERM the master (it passes it on to its helpers); return once every Postfix process has ended."""
        if self._reaper is None:
            return
        self._reaper.terminate()
        try:
            self._reaper.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            # A helper that ignores SIGTERM: end exactly the processes of this instance, then the reaper.
            for pid in self.processes():
                if pid != self._reaper.pid:  # the reaper stays to collect them
                    os.kill(pid, signal.SIGKILL)
            self._reaper.wait(timeout=_STOP_SECONDS)
        self._reaper = None

    def processes(self) -> list[int]:
        """The ids of this instance's processes: its reaper, master and helpers all carry its MAIL_CONFIG."""
        marker = f"MAIL_CONFIG={self.config}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def queued(self) -> str:
        """``postqueue -p``: what is still queued, and why."""
        listed = subprocess.run(
            [str(POSTQUEUE), "-c", str(self.config), "-p"], capture_output=True, text=True, timeout=30, check=False
        )
        return listed.stdout + listed.stderr

    def flush(self) -> None:
        """``postqueue -f``: retry every queued message now.

        Also the way out of a race of the queue manager's: a message it finds still locked by
        the delivery agent that just deferred it is put back with a fixed 60 s delay, longer
        than :data:`QUEUE_LIFETIME`, so it would neither be warned about nor retried in time.
        """
        subprocess.run([str(POSTQUEUE), "-c", str(self.config), "-f"], capture_output=True, timeout=30, check=True)

    def purge(self) -> None:
        """Delete every queued message (``postsuper -d ALL``), so nothing leaks into the next test."""
        subprocess.run(
            [str(POSTSUPER), "-c", str(self.config), "-d", "ALL"], capture_output=True, timeout=30, check=True
        )

    def log(self) -> str:
        """Postfix's log so far."""
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextmanager
def private_postfix(sink: SmtpSink, *, bounce_port: int) -> Iterator[Postfix]:
    """A running private Postfix in a temporary folder; stopped (every process gone) and removed on leaving."""
    root = Path(tempfile.mkdtemp(prefix="letterbox-postfix-"))
    # Postfix's helpers run as the postfix user: they must reach the queue through this folder.
    root.chmod(0o755)
    server = Postfix(root, sink, bounce_port=bounce_port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postfix_server() -> Iterator[Postfix]:
    """One private Postfix for the session, with its downstream sink; skipped where Postfix cannot run."""
    missing = postfix_missing()
    if missing:
        pytest.skip(missing)
    sink = SmtpSink(smtputf8=True)
    sink.start()
    try:
        with private_postfix(sink, bounce_port=free_port()) as server:
            yield server
    finally:
        sink.stop()


@pytest.fixture
def postfix(postfix_server: Postfix) -> Iterator[Postfix]:
    """The session's Postfix for one test: afterwards its queue is emptied and the sink's scripts forgotten.

    A message left queued would otherwise be retried into the next test, whose database
    reuses the same delivery ids.
    """
    try:
        yield postfix_server
    finally:
        postfix_server.purge()
        with postfix_server.sink.lock:
            postfix_server.sink.scripted.clear()
