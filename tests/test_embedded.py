"""`letterbox serve` on its embedded defaults: ready, reused, stopped cleanly, no orphan."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.smtp import free_port


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder of our own that the unprivileged PostgreSQL user can reach when we run as root.

    pytest's tmp_path lives under a 0700 folder; Letterbox refuses (rightly) to loosen that.
    """
    path = Path(tempfile.mkdtemp(prefix="letterbox-serve-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _postgres_pids(data_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"postgres") and str(data_dir).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"serve exited early with {process.returncode}: {errors[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise AssertionError("never ready")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_starts_embedded_postgres_and_leaves_nothing_behind(open_dir: Path, stop_signal: int) -> None:
    tmp_path = open_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env |= {"LETTERBOX_VAR_DIR": str(tmp_path / "var"), "LETTERBOX_LOG_FORMAT": "json"}
    data_dir = (tmp_path / "var" / "postgres").resolve()
    for round_ in (1, 2):  # the second start reuses the data directory
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(port, process)
            assert _postgres_pids(data_dir), "the embedded server should be running"
            if round_ == 1:
                assert (tmp_path / "var" / "secret").stat().st_mode & 0o777 == 0o600
                secret = (tmp_path / "var" / "secret").read_text()
            else:
                assert (tmp_path / "var" / "secret").read_text() == secret
            process.send_signal(stop_signal)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert _postgres_pids(data_dir) == []
    assert (data_dir / "PG_VERSION").exists()
    assert (tmp_path / "var" / "outbox").is_dir() or not (tmp_path / "var" / "outbox").exists()


def test_killed_serve_leaves_no_orphan(open_dir: Path) -> None:
    tmp_path = open_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env |= {"LETTERBOX_VAR_DIR": str(tmp_path / "var"), "LETTERBOX_LOG_FORMAT": "json"}
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_ready(port, process)
    data_dir = (tmp_path / "var" / "postgres").resolve()
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while _postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _postgres_pids(data_dir) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged server user exists only when run as root")
def test_root_with_a_closed_folder_gets_a_clear_refusal(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env["LETTERBOX_VAR_DIR"] = str(closed / "var")
    result = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "does not loosen permissions" in result.stderr
    assert "Traceback" not in result.stderr
    assert closed.stat().st_mode & 0o777 == 0o700
