"""Real `letterbox` processes for tests that kill, stop or multiply them."""

from __future__ import annotations

import os
import subprocess
import sys

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
