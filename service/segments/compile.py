"""Compile a parsed filter into a SQL boolean over the subscribers alias ``s``, with ``$n`` placeholders only.

The SQL text is put together from the constant fragments in this module and
nothing else: field names choose one of a fixed set of column expressions, and
every value and every attribute key travels as a parameter.

``not`` is pushed down to the conditions (De Morgan), and each condition has a
positive and a negative form.  That keeps the meaning of absent values that
``filter.py`` promises — a condition on an absent value is false, and its
negation true — without wrapping the positive forms in ``coalesce()``, which
would hide them from the indexes and the planner's statistics.
"""

from __future__ import annotations

from typing import Final

from .filter import DATE_FIELDS, AllOf, AnyOf, Compare, Contains, Exists, Filter, Member, Not

_COLUMN: Final = {
    "email": "lower(s.email)",
    "name": "lower(s.name)",
    "agency": "s.agency",
    "role": "s.role",
    "status": "s.status",
    "created_at": "s.created_at",
    "confirmed_at": "s.confirmed_at",
}
_NULLABLE: Final = {"agency": "s.agency", "role": "s.role", "confirmed_at": "s.confirmed_at"}
# Email and name compare case-insensitively: the filter's values are lowered by PostgreSQL too.
_CASELESS: Final = ("email", "name")
_OPERATOR: Final = {"eq": "=", "ne": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def compile_filter(node: Filter | None, *, first_param: int) -> tuple[str, list[object]]:
    """Return ``(sql, params)``: a boolean expression over ``s`` whose placeholders start at ``$first_param``.

    No filter gives ``("", [])``.  Parameters of ``jsonb`` type are Python values for the
    pool's jsonb codec (service/db/pool.py).
    """
    if node is None:
        return "", []
    compiler = _Compiler(first_param)
    return compiler.node(node, negated=False), compiler.params


class _Compiler:
    def __init__(self, first_param: int) -> None:
        self.first_param = first_param
        self.params: list[object] = []

    def param(self, value: object, sql_type: str) -> str:
        self.params.append(value)
        return f"${self.first_param + len(self.params) - 1}::{sql_type}"

    def node(self, node: Filter, *, negated: bool) -> str:
        if isinstance(node, Not):
            return self.node(node.child, negated=not negated)
        if isinstance(node, AllOf | AnyOf):
            # not(all) = any(not …) and not(any) = all(not …).
            conjunction = isinstance(node, AllOf) != negated
            if not node.children:
                return "TRUE" if conjunction else "FALSE"
            parts = [self.node(child, negated=negated) for child in node.children]
            return "(" + (" AND " if conjunction else " OR ").join(parts) + ")"
        if node.field == "attributes":
            assert node.key is not None, "the parser sets a key for every attribute condition"
            return self.attribute(node, node.key, negated=negated)
        return self.column(node, negated=negated)

    def column(self, node: Compare | Member | Exists | Contains, *, negated: bool) -> str:
        """A condition on one of the subscriber's own columns."""
        nullable = _NULLABLE.get(node.field)
        if isinstance(node, Exists):
            present = f"{nullable} IS NOT NULL" if nullable else "TRUE"
            present = "s.name <> ''" if node.field == "name" else present
            return present if node.present != negated else f"NOT ({present})"
        column = _COLUMN[node.field]
        sql_type = "timestamptz" if node.field in DATE_FIELDS else "text"
        if isinstance(node, Compare):
            value = self.param(node.value, sql_type)
            value = f"lower({value})" if node.field in _CASELESS else value
            positive = f"{column} {_OPERATOR[node.op]} {value}"
            negated = negated != (node.op == "ne")
        elif isinstance(node, Member):
            values = self.param(list(node.values), f"{sql_type}[]")
            if node.field in _CASELESS:
                # Our own constant text around a placeholder: no value reaches the SQL.
                values = f"ARRAY(SELECT lower(v) FROM unnest({values}) AS v)"  # noqa: S608
            positive = f"{column} = ANY ({values})"
            negated = negated != node.negated
        else:
            positive = f"strpos({column}, lower({self.param(node.value, 'text')})) > 0"
        if not negated:
            return positive
        return f"({nullable} IS NULL OR NOT ({positive}))" if nullable else f"NOT ({positive})"

    def attribute(self, node: Compare | Member | Exists | Contains, key: str, *, negated: bool) -> str:
        """A condition on ``s.attributes -> key``; the key is a parameter like any value."""
        may_be_null = False
        if isinstance(node, Exists):
            positive = f"s.attributes ? {self.param(key, 'text')}"
            negated = negated != (not node.present)
        elif isinstance(node, Compare) and node.op in ("eq", "ne"):
            # Containment of {key: value} is exact equality for a scalar, and the GIN index serves it.
            positive = f"s.attributes @> {self.param({key: node.value}, 'jsonb')}"
            negated = negated != (node.op == "ne")
        elif isinstance(node, Compare):
            k = self.param(key, "text")
            op = _OPERATOR[node.op]
            if isinstance(node.value, str):
                # Strings order by code point whatever the database's collation, as documented.
                positive = (f"(jsonb_typeof(s.attributes -> {k}) = 'string'"
                            f" AND (s.attributes ->> {k}) COLLATE \"C\" {op} {self.param(node.value, 'text')})")
            else:
                positive = (f"(jsonb_typeof(s.attributes -> {k}) = 'number'"
                            f" AND (s.attributes -> {k}) {op} {self.param(node.value, 'jsonb')})")
            may_be_null = True
        elif isinstance(node, Member):
            k = self.param(key, "text")
            positive = f"(s.attributes -> {k}) = ANY ({self.param(list(node.values), 'jsonb[]')})"
            negated = negated != node.negated
            may_be_null = True
        else:
            # A scalar is looked for as an element of an array attribute.
            wanted = node.value if isinstance(node.value, list | dict) else [node.value]
            positive = f"s.attributes @> {self.param({key: wanted}, 'jsonb')}"
        if not negated:
            return positive
        return f"NOT coalesce({positive}, false)" if may_be_null else f"NOT ({positive})"
