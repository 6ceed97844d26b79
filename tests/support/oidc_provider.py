"""A real OpenID provider on loopback for the console's sign-in tests: tests/support/node/oidc_provider.mjs.

Needs Node (``/usr/bin/node``) and ``npm ci`` run in tests/support/node (``make node-deps``, which
``make test`` runs); without them the tests that use it are skipped with a reason, except on CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.smtp import free_port

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENT_ID = "letterbox-console"
CLIENT_SECRET = "test-oidc-client-secret-0123456789"


def require_node_deps() -> str:
    """The node binary, or skip (fail on CI) when Node or the npm packages are missing."""
    node = shutil.which("node")
    missing = node is None or not (NODE_DIR / "node_modules" / "oidc-provider").is_dir()
    if missing:
        reason = "needs node and `make node-deps` (npm ci in tests/support/node)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert node is not None
    return node


class OidcProvider:
    """A running provider: ``issuer``, and :meth:`login_as` to choose who its login page signs in."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def login_as(self, email: str) -> None:
        """The next authorization signs in ``email`` (the provider's login page is automatic)."""
        httpx.get(f"{self.issuer}/test/login-as", params={"email": email}).raise_for_status()


@contextmanager
def oidc_provider(redirect_uri: str) -> Iterator[OidcProvider]:
    """Start the provider for one client whose callback is ``redirect_uri``; stop it afterwards."""
    node = require_node_deps()
    port = free_port()
    process = subprocess.Popen(
        [node, "oidc_provider.mjs", str(port), CLIENT_ID, CLIENT_SECRET, redirect_uri],
        cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready "), f"the OpenID provider did not start: {line!r}"
        yield OidcProvider(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)
