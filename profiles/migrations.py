"""The store's tables, and `migrate`, which brings a database's schema to head.

The Table objects here are what the store code reads and writes. The schema of a
database is made by Alembic revisions with frozen DDL (profiles/schema/versions),
never from these objects, so editing a declaration cannot rewrite an applied
revision: a schema change is a new revision plus the matching edit here (a test
compares a database made by the revisions with this metadata).
"""

from __future__ import annotations

import logging
import os
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

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
    inspect,
    text,
)

from tastebud.errors import StoreError

log = logging.getLogger("tastebud.migrations")

metadata = MetaData()

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



# Privacy (revision 0003): one audit row per forget, without the user id (an HMAC
# of it under the salt in privacy_secrets), and what was removed.
erasures = Table(
    "erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("erased_at", BigInteger, nullable=False),  # epoch ms
    Column("requested_by", String(64), nullable=False),  # "cli", "api:<key id>"
    Column("subject_hash", String(64), nullable=False),
    Column("counts", Text, nullable=False),  # JSON: store -> rows, vectors or files removed
    Index("ix_erasures_subject", "subject_hash", "id"),
)

privacy_secrets = Table(
    "privacy_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
)

# Opt-out of profiling (revision 0004): while a user has a row, no profile is
# made for them and their recommendations are popularity only.
profiling_optouts = Table(
    "profiling_optouts",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("opted_out_at", BigInteger, nullable=False),  # epoch ms
    Column("requested_by", String(64), nullable=False),  # "cli", "api:<key id>", "chat"
)

# ---- migrations ---------------------------------------------------------------

SCHEMA_DIR = Path(__file__).with_name("schema")  # Alembic script location (package data)
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")
LEGACY_REVISION = "0001"  # the schema of the numbered migrations 1..5 (schema_migrations)
LEGACY_TABLE = "schema_migrations"
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key of schema upgrades: "tastebud" in ASCII.
PG_LOCK_KEY = int.from_bytes(b"tastebud", "big")


@cache
def head_revision() -> str:
    """The newest revision, from the file names alone (NNNN_name.py has revision
    "NNNN" and revises the one before; a test holds the files to that), so an
    open of a database already at head never loads Alembic."""
    numbers = [m.group(1) for f in os.listdir(SCHEMA_DIR / "versions") if (m := _REVISION_FILE.match(f))]
    if not numbers:
        raise StoreError(f"no schema revisions in {SCHEMA_DIR / 'versions'}")
    return max(numbers)


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None when it has no alembic_version table."""
    if not conn.dialect.has_table(conn, VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def alembic_config(conn: Connection | None = None) -> Any:
    """An Alembic Config built in code: the packaged script folder, and `conn` for env.py."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCHEMA_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(conn: Connection) -> list[str]:
    """Bring the schema to head inside the caller's transaction (the caller commits);
    returns the revisions applied now ([] when it was at head).

    A database made before Alembic (schema_migrations, no alembic_version) is
    stamped at 0001, after creating whatever steps of 1..5 it lacks, then
    upgraded; an empty one runs every revision. All of this runs under a lock
    (PostgreSQL: pg_advisory_xact_lock; SQLite: BEGIN IMMEDIATE, the database's
    write lock), and the state is read again once the lock is held, so workers
    opening one database at once upgrade it once and all end at head.
    """
    head = head_revision()
    if current_revision(conn) == head:  # the common case: two cheap queries, no Alembic
        return []
    _lock(conn)
    start = current_revision(conn)  # again: another process may have upgraded meanwhile
    if start == head:
        return []
    from alembic import command
    from alembic.util import CommandError

    cfg = alembic_config(conn)
    origin = start
    try:
        if start is None:
            tables = set(inspect(conn).get_table_names())
            if LEGACY_TABLE in tables:
                _adopt_legacy(conn, cfg)
                origin = LEGACY_REVISION
            elif tables & set(metadata.tables):
                raise StoreError(
                    f"the database has tastebud tables ({', '.join(sorted(tables & set(metadata.tables)))}) "
                    f"but neither {VERSION_TABLE} nor {LEGACY_TABLE}: it was not created by tastebud"
                )
        command.upgrade(cfg, "head")
    except CommandError as exc:
        raise StoreError(
            f"cannot upgrade the database schema from revision {start or 'none'} to {head}: {exc} "
            "(a database written by a newer tastebud needs that version)"
        ) from exc
    applied = _revisions_after(cfg, origin, head)
    log.info("database schema upgraded to %s: %s%s", head, "pre-Alembic database stamped at 0001, then "
             if origin != start else "", ", ".join(applied) or "nothing to apply")
    return applied


def _lock(conn: Connection) -> None:
    """Hold the schema lock until the caller's transaction ends."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    elif name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            # pysqlite begins no transaction for SELECT or DDL: take SQLite's write
            # lock now (waiting up to busy_timeout), so DDL and stamp commit as one.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        # else the caller's transaction already holds its locks; DDL joins it.
    else:
        log.warning("no schema lock for dialect %s: start one worker first on a new database", name)


def _adopt_legacy(conn: Connection, cfg: Any) -> None:
    """Stamp a pre-Alembic database at 0001, first creating (with 0001's frozen DDL)
    the tables of any numbered migration it had not applied."""
    from alembic import command
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    done = set(conn.execute(text(f"SELECT version FROM {LEGACY_TABLE}")).scalars())
    steps = ScriptDirectory.from_config(cfg).get_revision(LEGACY_REVISION).module.LEGACY_STEPS
    missing = sorted(set(steps) - done)
    if missing:
        tables = set(inspect(conn).get_table_names())
        with Operations.context(MigrationContext.configure(conn)):
            for version in missing:
                name, step_tables, step = steps[version]
                present = tables.intersection(step_tables)
                if not present:
                    step()
                elif present != set(step_tables):  # the old runner's DDL autocommitted, its record did not
                    raise StoreError(f"pre-Alembic database half-way through migration {version} ({name}): "
                                     f"has {sorted(present)} of {list(step_tables)}; restore a backup")
                conn.execute(
                    text(f"INSERT INTO {LEGACY_TABLE} (version, name, applied_at) VALUES (:v, :n, :t)"),
                    {"v": version, "n": name, "t": int(time.time() * 1000)},
                )
        log.info("pre-Alembic database: applied its missing numbered migrations %s", missing)
    command.stamp(cfg, LEGACY_REVISION)


def _revisions_after(cfg: Any, start: str | None, head: str) -> list[str]:
    """The revisions after `start` up to `head`, oldest first."""
    from alembic.script import ScriptDirectory

    script, chain, rev = ScriptDirectory.from_config(cfg), [], head
    while rev is not None and rev != start:
        chain.append(rev)
        rev = script.get_revision(rev).down_revision
    return chain[::-1]
