"""The artifact as users run it: the built wheel, installed outside the checkout, on the defaults.

Every other test imports ``service`` from the checkout. This one builds the wheel,
installs it into a fresh virtualenv in a temporary folder, and runs its
``letterbox`` command from an empty folder with no ``LETTERBOX_*`` variable but
the port: embedded PostgreSQL, Maildir outbox, generated secret, an ``http://``
public URL. A reader signs up through the form, confirms through the link found
in the Maildir, an edition is posted, and the personal copy is found in the
Maildir with its standard headers. A reader with an international address signs
up too and stops nothing.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServeProcess
from tests.support.smtp import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


class _Form(HTMLParser):
    """The fields of the first form on a page: hidden values, the first option of each select, checkboxes."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("type") in {"hidden", "checkbox"} and a.get("name"):
            self.fields.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and a.get("value") and self._select not in self.fields:
            self.fields[self._select] = [a["value"]]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def _form_fields(page: str) -> dict[str, list[str]]:
    parser = _Form()
    parser.feed(page)
    return parser.fields


def _run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A virtualenv outside the checkout with the wheel built from it installed (not editable)."""
    outside = Path(tempfile.mkdtemp(prefix="letterbox-artifact-"))
    outside.chmod(0o755)  # the embedded PostgreSQL's unprivileged user must reach it when we run as root
    try:
        # Built from a copy without build/, .venv/ or var/: setuptools reuses build/lib, and a file
        # renamed since the last build would ship twice (a stale migration stopped the start).
        source = outside / "source"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "var", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache"))
        wheels = outside / "wheels"
        _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source))
        (wheel,) = wheels.glob("letterbox-*.whl")
        venv = outside / "venv"
        _run(sys.executable, "-m", "venv", str(venv))
        _run(str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel))
        yield venv
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _clean_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_") and k not in {"PYTHONPATH"}}
    env["LETTERBOX_PORT"] = str(port)
    return env


def _message_to(outbox: Path, address: str, subject: str, deadline: float) -> EmailMessage | None:
    """Wait until the Maildir holds a message delivered to ``address`` with ``subject``."""
    while True:
        if outbox.exists():
            for raw in mailbox.Maildir(str(outbox), create=False):
                message = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                if message["Delivered-To"] == address and message["Subject"] == subject:
                    return message
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def test_the_installed_wheel_delivers_on_the_defaults(installed: Path) -> None:
    bin_dir = installed / "bin"
    # The package must come from the virtualenv, not from this checkout.
    where = _run(str(bin_dir / "python"), "-c", "import service, sys; print(service.__file__)", cwd=installed)
    assert str(installed) in where and str(ROOT) not in where
    assert "site-packages" in where

    workdir = installed.parent / "run"
    workdir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _clean_env(port)
    serve = ServeProcess(
        subprocess.Popen([str(bin_dir / "letterbox"), "serve"], cwd=workdir, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        port,
    )
    try:
        serve.wait_ready(timeout=120)
        started = serve.log()
        # One warning at start says what production needs (an http public URL means no one-click).
        assert started.count("trial_links") == 1 and "https" in started

        _run(str(bin_dir / "letterbox"), "demo", cwd=workdir, env=env)
        key = _run(str(bin_dir / "letterbox"), "api-key", "create", "--name", "artifact", "--scope", "admin",
                   cwd=workdir, env=env).strip()
        outbox = workdir / "var" / "outbox"
        readers = ["reader@example.org", "üser@bücher.example"]

        with httpx.Client(base_url=base, timeout=10) as http:
            page = http.get("/subscribe")
            assert page.status_code == 200
            fields = _form_fields(page.text)
            list_slug = fields["lists"][0]
            for address in readers:
                form = {name: values[0] for name, values in fields.items() if name != "lists"}
                form |= {"email": address, "name": "Sam Reader", "lists": list_slug}
                answer = http.post("/subscribe", data=form)
                assert answer.status_code == 200 and "inbox" in answer.text.lower(), answer.text[:500]

            # The international reader is stored (and sent to) with the domain in its ASCII form.
            stored = ["reader@example.org", "üser@xn--bcher-kva.example"]
            for address in stored:
                confirmation = _message_to(outbox, address, "Please confirm your subscription", time.monotonic() + 30)
                assert confirmation is not None, f"no confirmation mail for {address}"
                assert confirmation["To"] == address
                text = confirmation.get_body(("plain",))
                assert text is not None
                link = re.search(r"https?://\S+/confirm/\S+", text.get_content())
                assert link is not None and link[0].startswith(base), text.get_content()
                path = link[0].removeprefix(base)
                assert http.get(path).status_code == 200
                confirmed = http.post(path)
                assert confirmed.status_code == 200, confirmed.text[:500]

            posted = http.post(
                "/v1/editions",
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "artifact-1"},
                json={"subject": "March briefing", "html": "<p>Hello {{name}}</p><p>{{unsubscribe_url}}</p>",
                      "lists": [list_slug]},
            )
            assert posted.status_code == 202, posted.text
            assert posted.json()["recipients"] == 2
            edition_id = posted.json()["id"]

            deadline = time.monotonic() + 60
            for address in stored:
                copy = _message_to(outbox, address, "March briefing", deadline)
                assert copy is not None, f"no copy for {address}"
                assert copy["From"] == "newsletter@localhost"
                assert copy["To"] == f"Sam Reader <{address}>"
                assert re.fullmatch(r"<\S+@localhost>", copy["Message-ID"])
                assert copy["Date"] and copy["List-Id"]
                unsubscribe = copy["List-Unsubscribe"]
                assert f"<{base}/unsubscribe/" in unsubscribe and "<mailto:unsubscribe+" in unsubscribe
                # RFC 8058 one-click needs an https URI: a trial on http does not offer it.
                assert copy["List-Unsubscribe-Post"] is None
                assert re.fullmatch(r"<bounce\+\S+@localhost>", copy["Return-Path"])
                body = copy.get_body(("plain",))
                assert body is not None and "Hello Sam Reader" in body.get_content()

            status = http.get(f"/v1/editions/{edition_id}", headers={"Authorization": f"Bearer {key}"})
            deadline = time.monotonic() + 30
            while status.json()["status"] != "done" and time.monotonic() < deadline:
                time.sleep(0.2)
                status = http.get(f"/v1/editions/{edition_id}", headers={"Authorization": f"Bearer {key}"})
            assert status.json()["status"] == "done"
            assert status.json()["sent"] == 2 and status.json()["failed"] == 0, status.json()
    finally:
        code = serve.stop()
    log = serve.log()
    assert code == 0, log[-3000:]
    assert not any(line.get("level") == "error" for line in map(_json_or_none, log.splitlines()) if line), log[-3000:]


def _json_or_none(line: str) -> dict[str, object] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
