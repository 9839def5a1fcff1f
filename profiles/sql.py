"""The one place that knows how SQLite and PostgreSQL spell "insert, and on a
key conflict update or skip": both take `INSERT … ON CONFLICT`, but SQLAlchemy
builds it from each dialect's own `insert`. Statements, not executions, so a
caller can add `.returning(…)` or pass a list of rows (executemany)."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Table

from tastebud.errors import StoreError


def dialect_insert(dialect: str, table: Table) -> Any:
    """`insert(table)` of the dialect (an engine's `dialect.name`), which has `on_conflict_*`."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise StoreError(f"unsupported database dialect {dialect!r}")
    return insert(table)


def upsert(dialect: str, table: Table, keys: Sequence[str], update: Sequence[str] | None = None,
           where: Any = None) -> Any:
    """Insert rows; a row whose `keys` are taken sets the `update` columns (all
    the others by default) to the new row's values instead, and only where
    `where` (a condition on the stored row) holds."""
    stmt = dialect_insert(dialect, table)
    columns = [c.name for c in table.columns if c.name not in keys] if update is None else list(update)
    return stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys],
                                      set_={name: stmt.excluded[name] for name in columns}, where=where)


def insert_ignore(dialect: str, table: Table) -> Any:
    """Insert rows; one that conflicts with a stored row (on any unique key) is skipped."""
    return dialect_insert(dialect, table).on_conflict_do_nothing()
