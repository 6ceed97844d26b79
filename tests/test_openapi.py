"""openapi.yaml is generated from the app; this fails when it drifts."""

from __future__ import annotations

from pathlib import Path

from service.openapi import render_openapi

SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"


def test_openapi_yaml_matches_the_app() -> None:
    assert SPEC.read_text() == render_openapi(), (
        "openapi.yaml is out of date: regenerate it with `.venv/bin/letterbox openapi` and commit it"
    )
