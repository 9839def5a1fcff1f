# The pre-Alembic schema runner, verbatim from git (profiles/migrations.py before issue 11 part 4):
# tests build "old" databases with it. Do not edit: it stands for what users have on disk.
"""Numbered schema migrations, recorded in `schema_migrations`.

Each migration is a function of a SQLAlchemy connection. Append new ones; never
edit an applied one. Tables are declared here so the schema has one home.
"""

from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    # seq is the ingestion order; profiles remember the last seq they saw.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("user_id", String(64), nullable=False),
    Column("item_id", String(64)),
    Column("type", String(16), nullable=False),
    Column("ts", BigInteger, nullable=False),  # epoch ms UTC
    Column("value", Float),
    Column("text", Text),
    Index("ix_events_user_ts", "user_id", "ts"),
    Index("ix_events_ts_user", "ts", "user_id"),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(64), primary_key=True),
    Column("title", Text),
    Column("description", Text),
    Column("categories", Text, nullable=False, default="[]"),  # JSON list
    Column("tags", Text, nullable=False, default="[]"),  # JSON list
    Column("attributes", Text, nullable=False, default="{}"),  # JSON object
    Column("updated_at", BigInteger),
    Column("is_stub", Boolean, nullable=False, default=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Hash of kind+source+line+raw: re-ingesting a file does not quarantine a row twice.
    Column("row_key", String(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # events | catalog
    Column("source", Text, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("format", String(16), nullable=False),  # csv | jsonl | mapping
    Column("header", Text),  # JSON list, for CSV rows
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
    Index("ix_quarantine_open", "resolved_at", "id"),
)

profile_versions = Table(
    "profile_versions",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("content_hash", String(64), nullable=False),
    Column("last_event_seq", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("narrative_source", String(16), nullable=False),  # llm | template | stale
    Column("data", Text, nullable=False),  # the whole profile as JSON
    Column("trigger_event_ids", Text, nullable=False, default="[]"),
)

# Latest pointer per user: cheap staleness checks without scanning versions.
profile_heads = Table(
    "profile_heads",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_event_seq", Integer, nullable=False),
    Column("narrative_source", String(16), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)


# Every served recommendation list, with why each item scored: support staff
# answer "why was X shown to U that day" from here, after the profile moved on.
rec_requests = Table(
    "rec_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("profile_version", Integer),
    Column("source", String(16), nullable=False),  # cli | agent | api | eval
    Column("params", Text, nullable=False),  # JSON: k, category, exclude, intent
    Index("ix_rec_requests_user", "user_id", "created_at"),
)

rec_items = Table(
    "rec_items",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("rank", Integer, primary_key=True, autoincrement=False),
    Column("user_id", String(64), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
    Column("parts", Text, nullable=False),  # JSON: part -> weighted contribution
    Column("evidence", Text, nullable=False),  # JSON: part -> evidence
    Index("ix_rec_items_user_item", "user_id", "item_id", "created_at"),
)


# API keys for `tastebud serve`: only a hash of the secret is kept; the key
# itself is shown once, when it is created. key_id is public (logs, revoke).
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("prefix", String(24), nullable=False),  # the key's first characters, to recognise it
    Column("secret_sha256", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # user | support | operator
    Column("user_id", String(64)),  # the one user a `user` key reaches
    Column("name", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
)


# Users whose narrative should be rewritten (`tastebud serve`): one row per user,
# so a burst of events is one request. Durable: a restart resumes the work.
# not_before is a worker's lease on the row or a retry's backoff.
narrative_queue = Table(
    "narrative_queue",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("requested_at", BigInteger, nullable=False),  # epoch ms of the latest request
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("not_before", BigInteger),  # epoch ms; NULL = due once debounced
)


def _create(*tables: Table) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return run


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "events, items, quarantine", _create(events, items, quarantine)),
    (2, "profile versions and heads", _create(profile_versions, profile_heads)),
    (3, "recommendation log", _create(rec_requests, rec_items)),
    (4, "api keys", _create(api_keys)),
    (5, "narrative queue", _create(narrative_queue)),
]


def migrate(conn: Connection) -> list[int]:
    """Apply pending migrations in order; returns the versions applied now."""
    schema_migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema_migrations.c.version)).scalars())
    applied = []
    for version, name, run in MIGRATIONS:
        if version in done:
            continue
        run(conn)
        conn.execute(schema_migrations.insert().values(version=version, name=name, applied_at=int(time.time() * 1000)))
        applied.append(version)
    return applied
