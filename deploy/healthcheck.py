"""Container health check for the Letterbox image (the Dockerfile's HEALTHCHECK runs this).

One image runs ``serve``, ``worker`` and ``migrate``, but Docker gives an image
one HEALTHCHECK.  Only ``serve`` answers HTTP, so the check first reads the
command line of the container's main process (PID 1, or the ``letterbox``
behind ``docker run --init``): for ``serve`` it asks ``/healthz`` (or the
path given) on the local port; for any other command (``worker``,
``bounce-receiver``, ``migrate``) a running process is all that "healthy" can
mean here, so it succeeds.  Standard library only: it runs
with the image's Python and nothing else.

    python /app/deploy/healthcheck.py [--path /readyz] [--pid 1] [--timeout 3]

Exit status 0 is healthy, 1 unhealthy (Docker's convention).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

# Addresses that mean "every interface": the check reaches them over loopback.
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised here, never bound


def read_cmdline(pid: int) -> list[str]:
    """The arguments of process ``pid`` (empty when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def letterbox_command(cmdline: Sequence[str]) -> str | None:
    """The sub-command after ``letterbox`` (or ``-m service.cli``) in a command line, or None.

    Whatever the sub-command (``worker``, ``bounce-receiver``, ``migrate``, and any added
    later), only ``serve`` is checked over HTTP.
    """
    for index, arg in enumerate(cmdline):
        if Path(arg).name == "letterbox" or arg == "service.cli":
            return next((a for a in cmdline[index + 1 :] if not a.startswith("-")), None)
    return None


def http_port(cmdline: Sequence[str], environ: dict[str, str]) -> str:
    """The port ``serve`` listens on: ``--port`` on its command line, else ``LETTERBOX_PORT``, else 8000."""
    for index, arg in enumerate(cmdline):
        if arg == "--port" and index + 1 < len(cmdline):
            return cmdline[index + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
    return environ.get("LETTERBOX_PORT", "").strip() or "8000"


def http_host(environ: dict[str, str]) -> str:
    """Where to reach the server from inside its container."""
    host = environ.get("LETTERBOX_HOST", "").strip()
    if host in _ANY_ADDRESS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check(url: str, timeout: float) -> tuple[bool, str]:
    """GET ``url``: healthy when it answers 200 within ``timeout`` seconds."""
    try:
        # The URL is built above from a fixed http:// scheme, never from outside input.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status == 200, f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} unreachable: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; print one line saying why; return the exit status."""
    parser = argparse.ArgumentParser(description="Health check of a Letterbox container.")
    parser.add_argument("--path", default="/healthz", help="HTTP path to ask (default /healthz; /readyz for ready)")
    parser.add_argument("--pid", type=int, default=1, help="the process whose command says what runs (default 1)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    cmdline = read_cmdline(args.pid)
    command = letterbox_command(cmdline)
    # An unreadable or unknown command line is checked over HTTP: better a false alarm than a silent outage.
    if command is not None and command != "serve":
        print(f"letterbox {command} serves no HTTP; its process is running")
        return 0
    environ = dict(os.environ)
    url = f"http://{http_host(environ)}:{http_port(cmdline, environ)}{args.path}"
    healthy, detail = check(url, args.timeout)
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
