"""Queries with named parameters: numbered in order, literals and casts left alone, names checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.db.queries import Queries, QueryError, load_queries


def load_queries_from(tmp_path: Path, text: str) -> Queries:
    (tmp_path / "things.sql").write_text(text)
    return load_queries(tmp_path)


def test_named_parameters_become_numbered_and_are_bound_by_name(tmp_path: Path) -> None:
    queries = load_queries_from(tmp_path, (
        "-- name: thing-insert\n-- Store a thing.\n"
        "INSERT INTO things (a, b, note) VALUES (:a::int, :b, 'at 10:30 :a') RETURNING :a;\n"
    ))
    assert queries["thing-insert"] == "INSERT INTO things (a, b, note) VALUES ($1::int, $2, 'at 10:30 :a') RETURNING $1"
    assert queries.bind("thing-insert", b="two", a=1) == (queries["thing-insert"], (1, "two"))


def test_bind_refuses_missing_or_unknown_names_and_positional_queries(tmp_path: Path) -> None:
    queries = load_queries_from(tmp_path, (
        "-- name: thing-insert\nINSERT INTO things (a, b) VALUES (:a, :b);\n"
        "-- name: thing-get\nSELECT * FROM things WHERE a = $1;\n"
    ))
    with pytest.raises(QueryError, match=r"missing \['b'\], unknown \['c'\]"):
        queries.bind("thing-insert", a=1, c=3)
    with pytest.raises(QueryError, match="positional"):
        queries.bind("thing-get", a=1)


def test_a_query_mixing_both_kinds_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="mixes"):
        load_queries_from(tmp_path, "-- name: thing-mixed\nSELECT * FROM things WHERE a = $1 AND b = :b;\n")
