"""Run a daemon that forks helpers, and exit only once every process it started is gone.

``python -m tests.support.reaper COMMAND…`` runs COMMAND as a child and becomes the
*child subreaper* of everything below it (``PR_SET_CHILD_SUBREAPER``): when a
daemon's master exits before its helpers, as Postfix's does, the helpers are
re-parented here instead of to PID 1, and are reaped here when they end.  This
process exits when it has no child left, so a caller that waits for it knows the
whole tree has ended.

SIGTERM or SIGINT here is passed to COMMAND as SIGTERM.  The reaper also asks for
SIGTERM when its own parent dies (``PR_SET_PDEATHSIG``), so a test run that is
killed does not leave the daemon behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def main(argv: list[str]) -> int:
    """Run ``argv`` and reap it and its descendants; return the command's exit status."""
    if not argv:
        print("usage: python -m tests.support.reaper COMMAND [ARG…]", file=sys.stderr)
        return 2
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return 1
    command = os.posix_spawnp(argv[0], argv, os.environ)
    ended: int | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        if ended is None:
            os.kill(command, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:  # nobody left: the command and everything it started have ended
            return 1 if ended is None else ended
        if pid == command:
            code = os.waitstatus_to_exitcode(wait_status)
            ended = code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
