"""The settings of issue 12: metrics port, the bounce receiver's limits, statement timeouts, trusted proxies."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_and_values() -> None:
    defaults = load_settings({})
    assert defaults.metrics_port is None
    assert (defaults.bounce_smtp_max_connections, defaults.bounce_smtp_idle_timeout_seconds) == (100, 30.0)
    assert (defaults.preview_timeout_seconds, defaults.fan_out_timeout_seconds) == (5.0, 30.0)
    given = load_settings({
        "LETTERBOX_METRICS_PORT": "9100",
        "LETTERBOX_BOUNCE_SMTP_MAX_CONNECTIONS": "20",
        "LETTERBOX_BOUNCE_SMTP_IDLE_TIMEOUT_SECONDS": "2.5",
        "LETTERBOX_PREVIEW_TIMEOUT_SECONDS": "0",
        "LETTERBOX_FAN_OUT_TIMEOUT_SECONDS": "120",
        "LETTERBOX_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8",
    })  # fmt: skip
    assert given.metrics_port == 9100 and given.bounce_smtp_max_connections == 20
    assert given.bounce_smtp_idle_timeout_seconds == 2.5
    assert (given.preview_timeout_seconds, given.fan_out_timeout_seconds) == (0.0, 120.0)
    assert load_settings({"LETTERBOX_TRUSTED_PROXIES": "*"}).trusted_proxies == "*"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LETTERBOX_METRICS_PORT", "70000"),
        ("LETTERBOX_BOUNCE_SMTP_MAX_CONNECTIONS", "0"),
        ("LETTERBOX_BOUNCE_SMTP_IDLE_TIMEOUT_SECONDS", "0"),
        ("LETTERBOX_PREVIEW_TIMEOUT_SECONDS", "-1"),
        ("LETTERBOX_FAN_OUT_TIMEOUT_SECONDS", "soon"),
        # uvicorn would take these as literal host names and silently trust nobody.
        ("LETTERBOX_TRUSTED_PROXIES", "ingress.local"),
        ("LETTERBOX_TRUSTED_PROXIES", "10.0.0.1/8"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({variable: value})
    assert refused.value.variable == variable
