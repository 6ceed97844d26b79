"""Real `letterbox` processes for tests that kill, stop or multiply them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request

from service.settings import Settings


def settings_env(settings: Settings, **overrides: str | int) -> dict[str, str]:
    """The environment that makes a `letterbox` process use the same database, SMTP and keys as ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update(
        {
            "LETTERBOX_DATABASE_URL": settings.database_url or "",
            "LETTERBOX_SMTP_URL": settings.smtp_url or "",
            "LETTERBOX_SECRET_KEYS": ",".join(settings.secret_keys),
            "LETTERBOX_PUBLIC_URL": settings.public_url,
            "LETTERBOX_FROM": settings.from_addr,
            "LETTERBOX_VAR_DIR": settings.var_dir,
            "LETTERBOX_LOG_FORMAT": "json",
        }
    )
    env.update({f"LETTERBOX_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def start_letterbox(settings: Settings, *args: str, **overrides: str | int) -> subprocess.Popen[bytes]:
    """Start ``letterbox ARGS…`` as a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        env=settings_env(settings, **overrides),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


class ServeProcess:
    """A ``letterbox serve`` child process on ``port``; its stderr (the log) is drained into memory as it comes.

    Draining matters: a pipe nobody reads fills up, and the server then blocks on its next log line.
    """

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._lines: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    def log(self) -> str:
        """Everything the process has written to stderr so far."""
        return b"".join(self._lines).decode(errors="replace")

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 right now."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for ``/readyz`` to answer 200; fail with the log if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise AssertionError(f"serve exited with {self.process.returncode}: {self.log()[-3000:]}")
            if self.ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"serve was not ready within {timeout:.0f} s: {self.log()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; wait for the log to be complete; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        return code


class Served(ServeProcess):
    """``letterbox serve`` using the same database, SMTP and keys as ``settings``."""

    def __init__(self, settings: Settings, *args: str, port: int, **overrides: str | int) -> None:
        super().__init__(start_letterbox(settings, "serve", *args, port=port, **overrides), port)
