"""Erasure of one user from the event store: every row that holds them, in one
transaction, plus one audit row that holds no id (docs/design.md#privacy).

The rows are the user's events, profile versions and head, recommendation-log
requests and items (with their evidence), narrative-queue row, API keys, and
quarantined rows that belong to them: by the user id parsed from the raw text
(JSON or CSV with its header), or, for a row that cannot be parsed, by the id
appearing as one field of the raw text. The audit row keeps when, who asked,
HMAC-SHA256(salt, user id) and the counts; the salt is the database's own
(`privacy_secrets`), so every worker hashes alike and the hash of a guessed id
cannot be computed without the database.

On SQLite, deleted bytes must not survive in free pages or the WAL: the delete
runs with `secure_delete` on (freed cells are zeroed), and the WAL is then
checkpointed and truncated, so no older frame keeps a copy.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from typing import Any, Iterable

from sqlalchemy import delete, func, insert, select, update

from tastebud.errors import StoreError
from tastebud.profiles.migrations import (
    api_keys, erasures, events, narrative_queue, privacy_secrets, profile_heads, profile_versions, profiling_optouts,
    quarantine, rec_items, rec_requests,
)
from tastebud.profiles.readers import EVENT_ALIASES
from tastebud.profiles.store import EventStore

log = logging.getLogger("tastebud.privacy")

SALT_NAME = "erasure_salt"
# Tables keyed by user_id, in delete order (children first).
USER_TABLES = (
    ("rec_items", rec_items), ("rec_requests", rec_requests), ("profile_heads", profile_heads),
    ("profile_versions", profile_versions), ("narrative_queue", narrative_queue), ("api_keys", api_keys),
    ("profiling_optouts", profiling_optouts), ("events", events),
)
# What a user's profile is made of in the database: removed on opt-out (events and keys stay).
PROFILE_TABLES = (("profile_heads", profile_heads), ("profile_versions", profile_versions),
                  ("narrative_queue", narrative_queue))
_USER_FIELDS = frozenset(EVENT_ALIASES["user_id"])
_FIELD_SPLIT = re.compile(r"""[,\t;|:{}\[\]"'\s=]+""")


def _now_ms() -> int:
    return int(time.time() * 1000)


def subject_hash(conn: Any, user_id: str) -> str:
    """HMAC-SHA256 of the user id under the database's salt (made on first use)."""
    salt = conn.execute(select(privacy_secrets.c.value).where(privacy_secrets.c.name == SALT_NAME)).scalar()
    if salt is None:
        conn.execute(insert(privacy_secrets).values(name=SALT_NAME, value=secrets.token_hex(32)))
        salt = conn.execute(select(privacy_secrets.c.value).where(privacy_secrets.c.name == SALT_NAME)).scalar_one()
    return hmac.new(salt.encode(), user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def quarantined_row_user(raw: str, fmt: str, header: str | None) -> str | None:
    """The user id of a quarantined row when its text parses (JSON object, or a CSV
    row with its header); None when it parses without one; raises ValueError when
    it does not parse (the caller then looks for the id as a field)."""
    if fmt in ("jsonl", "mapping") or raw.lstrip().startswith("{"):
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key, value in data.items():
            if str(key).strip().lower() in _USER_FIELDS and value is not None:
                return str(value).strip()
        return None
    context = json.loads(header) if header else {}
    columns = context.get("columns") if isinstance(context, dict) else None
    if not columns:
        raise ValueError("a CSV row without its header")
    fields = next(csv.reader([raw], delimiter=context.get("delimiter", ",")))
    if len(fields) != len(columns):
        raise ValueError("wrong field count")
    for name, value in zip(columns, fields):
        if str(name).strip().lower() in _USER_FIELDS:
            return value.strip()
    constants = context.get("constants") or {}
    return str(constants["user_id"]) if "user_id" in constants else None


def quarantined_row_mentions(user_id: str, raw: str, fmt: str, header: str | None) -> bool:
    try:
        return quarantined_row_user(raw, fmt, header) == user_id
    except (ValueError, TypeError, csv.Error, RecursionError):
        return user_id in _FIELD_SPLIT.split(raw)


def quarantine_ids(conn: Any, user_id: str) -> list[int]:
    """Ids of quarantined rows (open or resolved) that belong to the user. A scan:
    the quarantine is small, and a raw text can name the user anywhere."""
    out = []
    query = select(quarantine.c.id, quarantine.c.raw, quarantine.c.format, quarantine.c.header)
    for qid, raw, fmt, header in conn.execute(query.where(quarantine.c.raw.contains(user_id, autoescape=True))):
        if quarantined_row_mentions(user_id, raw, fmt, header):
            out.append(qid)
    return out


def erase_user_rows(store: EventStore, user_id: str, requested_by: str,
                    extra_counts: dict[str, int] | None = None) -> dict[str, int]:
    """Delete every row of the user and write (or, on a rerun that found nothing
    left, top up) the audit row, in one transaction; then scrub SQLite's files.
    Returns the rows removed per table."""
    counts: dict[str, int] = {}
    with store.transaction() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        store._lock_users(conn, {user_id})  # no writer of this user's events commits in between (PostgreSQL)
        for name, table in USER_TABLES:
            counts[name] = conn.execute(delete(table).where(table.c.user_id == user_id)).rowcount or 0
        qids = quarantine_ids(conn, user_id)
        counts["quarantine"] = 0
        for start in range(0, len(qids), 500):
            counts["quarantine"] += conn.execute(delete(quarantine).where(quarantine.c.id.in_(qids[start:start + 500]))).rowcount
        record_erasure(conn, user_id, requested_by, {**counts, **(extra_counts or {})})
    if store.dialect == "sqlite":
        scrub_sqlite(store)
    return counts


def erase_profile_rows(store: EventStore, user_ids: Iterable[str]) -> dict[str, int]:
    """Delete the users' profile versions, heads and narrative-queue rows (not their
    events, keys or log), with the same care as a forget: secure_delete on SQLite
    and the WAL truncated. Returns the rows removed per table."""
    users = sorted(set(user_ids))
    counts = {name: 0 for name, _ in PROFILE_TABLES}
    if not users:
        return counts
    with store.transaction() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        for start in range(0, len(users), 500):
            chunk = users[start:start + 500]
            for name, table in PROFILE_TABLES:
                counts[name] += conn.execute(delete(table).where(table.c.user_id.in_(chunk))).rowcount or 0
    if store.dialect == "sqlite" and any(counts.values()):
        scrub_sqlite(store)
    return counts


def record_erasure(conn: Any, user_id: str, requested_by: str, counts: dict[str, int]) -> None:
    """One audit row per forget. A rerun (an interrupted forget, or one repeated)
    that finds no row left adds its counts to the subject's latest audit row
    instead of writing a second one."""
    digest = subject_hash(conn, user_id)
    rows_removed = sum(v for k, v in counts.items() if k in dict(USER_TABLES) or k == "quarantine")
    latest = conn.execute(select(erasures.c.id, erasures.c.counts).where(erasures.c.subject_hash == digest)
                          .order_by(erasures.c.id.desc()).limit(1)).first()
    if latest is not None and rows_removed == 0:
        merged = json.loads(latest.counts)
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
        conn.execute(update(erasures).where(erasures.c.id == latest.id).values(counts=json.dumps(merged, sort_keys=True)))
        return
    conn.execute(insert(erasures).values(erased_at=_now_ms(), requested_by=requested_by[:64], subject_hash=digest,
                                         counts=json.dumps(counts, sort_keys=True)))


def add_to_latest_erasure(store: EventStore, user_id: str, counts: dict[str, int]) -> None:
    """Counts of stores outside the database (vectors, files), added after they went."""
    with store.transaction() as conn:
        digest = subject_hash(conn, user_id)
        latest = conn.execute(select(erasures.c.id, erasures.c.counts).where(erasures.c.subject_hash == digest)
                              .order_by(erasures.c.id.desc()).limit(1)).first()
        if latest is None:
            return
        merged = json.loads(latest.counts)
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
        conn.execute(update(erasures).where(erasures.c.id == latest.id).values(counts=json.dumps(merged, sort_keys=True)))


def erasure_log(store: EventStore, limit: int = 100) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(erasures).order_by(erasures.c.id.desc()).limit(limit)).mappings().all()
    return [{**dict(r), "counts": json.loads(r["counts"])} for r in rows]


def erasure_count(store: EventStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(erasures)).scalar_one()


def scrub_sqlite(store: EventStore, attempts: int = 50) -> None:
    """Checkpoint the WAL into the database and truncate it to zero bytes, so no
    frame written before the delete keeps a copy of a deleted row. A reader in
    the middle of a transaction holds the checkpoint back: retry for a while."""
    for attempt in range(attempts):
        with store.engine.connect() as conn:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return
        time.sleep(0.05 * min(attempt + 1, 10))
    raise StoreError("could not checkpoint the SQLite WAL after a forget: a reader kept it busy; run forget again")


def user_tables() -> Iterable[str]:
    return [name for name, _ in USER_TABLES] + ["quarantine"]

