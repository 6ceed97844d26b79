"""Where the SQL that ships inside the package is found, wherever the package is installed.

Migrations and named queries are package data (``service/sql/``), read through
``importlib.resources`` so that a wheel installed into any site-packages, a
zip import or an editable checkout all find the same files.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

SQL_ROOT: Traversable = files("service") / "sql"
MIGRATIONS_DIR: Traversable = SQL_ROOT / "migrations"
QUERIES_DIR: Traversable = SQL_ROOT / "queries"


def sql_files(folder: Traversable) -> list[Traversable]:
    """The ``*.sql`` files of ``folder`` sorted by name; empty when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".sql") and f.is_file()), key=lambda f: f.name)
