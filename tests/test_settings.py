"""Settings: every variable parsed, every bad value named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_match_the_design() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.smtp_url is None
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.from_addr == "newsletter@localhost"
    assert settings.effective_bounce_domain == "localhost"
    assert not settings.one_click, "an http public URL cannot offer RFC 8058 one-click"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.send_rate == 0
    assert settings.bounce_smtp_port is None


def test_every_documented_variable_is_read() -> None:
    settings = load_settings(
        {
            "LETTERBOX_DATABASE_URL": "postgresql://u:p@db:5432/letterbox",
            "LETTERBOX_SMTP_URL": "smtp+starttls://user:pa%40ss@mail.example.org:587",
            "LETTERBOX_PUBLIC_URL": "https://news.example.org/",
            "LETTERBOX_SECRET_KEYS": "new-key-0123456789abcdef, old-key-0123456789abcdef",
            "LETTERBOX_FROM": "News <news@example.org>",
            "LETTERBOX_BOUNCE_DOMAIN": "bounces.example.org",
            "LETTERBOX_HOST": "0.0.0.0",
            "LETTERBOX_PORT": "9000",
            "LETTERBOX_BOUNCE_SMTP_PORT": "2525",
            "LETTERBOX_SEND_RATE": "12.5",
            "LETTERBOX_DKIM_SELECTOR": "lb1",
            "LETTERBOX_DKIM_KEY_FILE": "/etc/letterbox/dkim.pem",
            "LETTERBOX_LOG_FORMAT": "json",
        }
    )
    assert settings.public_url == "https://news.example.org"
    assert settings.secret_keys == ("new-key-0123456789abcdef", "old-key-0123456789abcdef")
    assert settings.signing_key == "new-key-0123456789abcdef"
    assert settings.effective_bounce_domain == "bounces.example.org"
    assert settings.port == 9000
    assert settings.bounce_smtp_port == 2525
    assert settings.send_rate == 12.5
    assert settings.log_format == "json"
    assert settings.dkim_key_file == "/etc/letterbox/dkim.pem"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LETTERBOX_DATABASE_URL", "mysql://x/y"),
        ("LETTERBOX_SMTP_URL", "ftp://mail"),
        ("LETTERBOX_SMTP_URL", "smtp://mail:notaport"),
        ("LETTERBOX_PUBLIC_URL", "news.example.org"),
        ("LETTERBOX_SECRET_KEYS", "short"),
        ("LETTERBOX_PORT", "eighty"),
        ("LETTERBOX_PORT", "70000"),
        ("LETTERBOX_SEND_RATE", "-1"),
        ("LETTERBOX_LOG_FORMAT", "xml"),
        ("LETTERBOX_FROM", "news@example.org\r\nBcc: x@y"),
        ("LETTERBOX_DKIM_SELECTOR", "only-half"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert caught.value.variable.startswith("LETTERBOX_")
    assert variable in str(caught.value) or caught.value.variable == "LETTERBOX_DKIM_KEY_FILE"


@pytest.mark.slow  # a real process
def test_the_command_stops_with_one_line_and_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        env={"LETTERBOX_SMTP_URL": "ftp://mail", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and "LETTERBOX_SMTP_URL" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "public_url", "from_addr"),
    [
        ({"LETTERBOX_PORT": "9000"}, "http://127.0.0.1:9000", "newsletter@localhost"),
        ({"LETTERBOX_HOST": "0.0.0.0", "LETTERBOX_PORT": "8080"}, "http://localhost:8080", "newsletter@localhost"),
        ({"LETTERBOX_HOST": "::1"}, "http://[::1]:8000", "newsletter@localhost"),
        ({"LETTERBOX_HOST": "news.internal"}, "http://news.internal:8000", "newsletter@news.internal"),
        ({"LETTERBOX_PUBLIC_URL": "https://News.Example.org/"}, "https://News.Example.org", "newsletter@news.example.org"),
        ({"LETTERBOX_PUBLIC_URL": "https://a.example", "LETTERBOX_FROM": "x@b.example"}, "https://a.example", "x@b.example"),
    ],
)
def test_links_follow_the_bind_and_mail_follows_the_links(
    env: dict[str, str], public_url: str, from_addr: str
) -> None:
    settings = load_settings(env)
    assert settings.public_url == public_url
    assert settings.from_addr == from_addr
    assert settings.one_click == public_url.startswith("https://")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("LETTERBOX_FROM", "News <news@[192.0.2.1]>", "message_id_domain"),
        ("LETTERBOX_BOUNCE_DOMAIN", "bounces example.org", "list_id"),
        ("LETTERBOX_PUBLIC_URL", "https://news.example.org/ä", "unsubscribe_url"),
        ("LETTERBOX_DKIM_KEY_FILE", "/nonexistent/dkim.pem", "cannot read"),
    ],
)
@pytest.mark.slow  # a real process
def test_configuration_that_would_fail_every_copy_stops_the_start(variable: str, value: str, words: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "LETTERBOX_DATABASE_URL": "postgresql://nowhere.invalid/x", variable: value}
    if variable == "LETTERBOX_DKIM_KEY_FILE":
        env["LETTERBOX_DKIM_SELECTOR"] = "s1"
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker"], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"letterbox: {variable}: ") and words in last, result.stderr
    assert "Traceback" not in result.stderr
