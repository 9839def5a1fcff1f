"""The event store: append-only events, the catalog and the quarantine (profile
versions are kept by tastebud.profiles.versions; this reads their heads only, to
tell which profiles lag their events).

SQLAlchemy Core over SQLite (WAL) by default; any SQLAlchemy URL (PostgreSQL)
through settings. Writes are idempotent: event ids are unique, so a rerun of
any interrupted job only adds what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Engine, create_engine, event, exists, func, or_, select, text as sql_text, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tastebud.profiles.events import Event, Item
from tastebud.profiles.migrations import events, items, migrate, profile_heads, profiling_optouts, quarantine
from tastebud.profiles.rows import _ITEM_COLUMNS, _item_row, _json, _row_event, _row_item  # _row_event: re-exported
from tastebud.profiles.sql import insert_ignore, upsert
from tastebud.errors import InputError, NotFoundError, StoreError
from tastebud.timefmt import iso_or_none

log = logging.getLogger("tastebud.store")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class QuarantinedRow:
    kind: str
    source: str
    line_no: int
    raw: str
    reason: str
    format: str
    header: Sequence[str] | None = None
    delimiter: str = ","
    constants: Mapping[str, Any] | None = None  # fields every row of the source got (type=rating)

    def key(self) -> str:
        text = f"{self.kind}\x1f{self.source}\x1f{self.line_no}\x1f{self.raw}"
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def context(self) -> str | None:
        """What retry needs to re-read the raw text, as JSON (the `header` column)."""
        if self.header is None and not self.constants:
            return None
        data: dict[str, Any] = {"columns": list(self.header) if self.header is not None else None}
        if self.delimiter != ",":
            data["delimiter"] = self.delimiter
        if self.constants:
            data["constants"] = dict(self.constants)
        return _json(data)


class EventStore:
    def __init__(self, url: str):
        self.url = url
        try:
            self.engine = _make_engine(url)
            with self.engine.begin() as conn:
                migrate(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open event store at {url}: {exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}") from exc
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps
        # in growing steps (up to 100 ms) however soon it is free; this process's
        # writers queue here instead and are woken at once.
        self._writers = threading.RLock() if self.dialect == "sqlite" else None
        self.checkpoints = 0  # passes of checkpoint_in_background's thread

    @classmethod
    def from_settings(cls, settings: Any) -> "EventStore":
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings.effective_database_url)

    def close(self) -> None:
        self.engine.dispose()

    def checkpoint_in_background(self, every_s: float = 1.0) -> threading.Event | None:
        """For a long-running process with many writers (the server). SQLite's automatic
        checkpoint runs in the writer that commits, inside this process's writer queue,
        and stalls every writer behind it while it copies the WAL (over a second for the
        64 MB `wal_autocheckpoint` allows). Here connections stop checkpointing on commit
        and a daemon thread checkpoints every `every_s` instead, PASSIVE (it never waits
        for a reader or a writer). Returns the event that stops it; None for other databases."""
        if self.dialect != "sqlite":
            return None
        event.listen(self.engine, "connect", _no_autocheckpoint)  # after the pragmas: it wins
        self.engine.dispose()  # connections pooled so far checkpoint on commit
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(every_s):
                try:
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    self.checkpoints += 1
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    log.warning("WAL checkpoint failed: %s", exc)

        threading.Thread(target=run, name="tastebud-wal-checkpoint", daemon=True).start()
        return stop

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        try:
            with self._writers or nullcontext(), self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"event store error: {exc.orig}") from exc

    # ---- writes --------------------------------------------------------
    def write_batch(
        self, new_events: Sequence[Event], rejected: Sequence[QuarantinedRow] = (), conn: Any = None
    ) -> tuple[int, int]:
        """Store one batch atomically: events, stub items, quarantine rows.

        Returns (accepted, duplicates). Good rows and their batch's rejects land
        together or not at all, so a crash never splits a batch.
        """
        rows = [(e.event_id, e.user_id, e.item_id, e.type, e.ts, e.value, e.text) for e in new_events]
        return self.write_event_rows(rows, rejected, conn)

    def write_event_rows(
        self, rows: Sequence[tuple], rejected: Sequence[QuarantinedRow] = (), conn: Any = None,
        item_ids: AbstractSet[str] | None = None,
    ) -> tuple[int, int]:
        """write_batch for validated tuples in Event field order (the ingestion hot path).

        Returns (accepted, duplicates): duplicates are rows whose event_id is
        already stored or appears earlier in the same batch. `item_ids` are the
        items to make sure exist (as stubs if new); by default every item the
        rows name. A caller that saw some of them committed may leave those
        out: items are never deleted.
        """
        if conn is None:
            with self.transaction() as conn:
                return self.write_event_rows(rows, rejected, conn, item_ids)
        inserted = 0
        if rows:
            self._lock_users(conn, {r[1] for r in rows})
            if item_ids is None:
                item_ids = {r[2] for r in rows}
                item_ids.discard(None)
            self._ensure_items(conn, set(item_ids))
            if self.dialect == "sqlite":
                inserted = self._sqlite_insert_events(conn, rows)
            else:
                inserted = self._generic_insert_events(conn, rows)
        if rejected:
            self.quarantine_rows(rejected, conn)
        return inserted, len(rows) - inserted

    def append_event_rows(self, rows: Sequence[tuple], rejected: Sequence[QuarantinedRow] = ()) -> set[str]:
        """write_event_rows for callers that answer per row (the API): one
        transaction, and the ids actually inserted (INSERT … RETURNING), so a
        row is reported as a duplicate only if it really was one, even when
        another writer stores the same event at the same moment."""
        with self.transaction() as conn:
            inserted: set[str] = set()
            if rows:
                self._lock_users(conn, {r[1] for r in rows})
                item_ids = {r[2] for r in rows}
                item_ids.discard(None)
                self._ensure_items(conn, item_ids)
                stmt = insert_ignore(self.dialect, events).returning(events.c.event_id)
                inserted = set(conn.execute(stmt, [dict(zip(_EVENT_COLUMNS, r)) for r in rows]).scalars())
            if rejected:
                self.quarantine_rows(rejected, conn)
        return inserted

    def _lock_users(self, conn: Any, user_ids: AbstractSet[str]) -> None:
        """PostgreSQL: one writer of a user's events at a time, until it commits.

        A profile covers its user's events up to a `seq`, and "lagging" means a
        stored event above it. SQLite commits writers one at a time, so seqs
        appear in order; PostgreSQL hands out seqs at insert and commits in any
        order, so without this a reader could save a profile up to seq n+1 (the
        second writer committed first) before seq n becomes visible, and that
        event would never count as new: its profile would miss it for good.
        Transaction-scoped advisory locks per user (hashed), taken in one
        order, make a user's seqs commit in order; other users do not wait."""
        if self.dialect != "postgresql" or not user_ids:
            return
        conn.execute(_PG_LOCK_USERS, {"space": _PG_USER_LOCK_SPACE, "users": sorted(user_ids)})

    def _sqlite_insert_events(self, conn: Any, rows: Sequence[tuple]) -> int:
        """One executemany on the DBAPI cursor; ON CONFLICT DO NOTHING skips
        known ids (and repeats within the batch), and sqlite3 sums the rows
        actually inserted into rowcount, so no lookup query is needed."""
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT_EVENTS, rows)
            return cursor.rowcount
        finally:
            cursor.close()

    def _generic_insert_events(self, conn: Any, rows: Sequence[tuple]) -> int:
        """Any other dialect (PostgreSQL): look up known ids, insert the rest.
        Drivers do not all report executemany row counts, hence the lookup."""
        unique: dict[str, tuple] = {}
        for r in rows:
            unique.setdefault(r[0], r)
        existing: set[str] = set()
        for chunk in _chunks(list(unique), 5000):
            existing.update(conn.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk))).scalars())
        fresh = [dict(zip(_EVENT_COLUMNS, r)) for eid, r in unique.items() if eid not in existing]
        if not fresh:
            return 0
        result = conn.execute(insert_ignore(self.dialect, events), fresh)
        rowcount = result.rowcount
        return rowcount if rowcount is not None and 0 <= rowcount <= len(fresh) else len(fresh)

    def _ensure_items(self, conn: Any, item_ids: set[str]) -> int:
        """Events may name items the catalog has not seen yet: create marked stubs."""
        if not item_ids:
            return 0
        if self.dialect == "sqlite":
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(_SQLITE_INSERT_STUB, [(i,) for i in item_ids])
                return cursor.rowcount
            finally:
                cursor.close()
        known = set()
        for chunk in _chunks(list(item_ids), 5000):
            known.update(conn.execute(select(items.c.item_id).where(items.c.item_id.in_(chunk))).scalars())
        missing = item_ids - known
        if missing:
            conn.execute(
                insert_ignore(self.dialect, items),
                [{"item_id": i, "categories": "[]", "tags": "[]", "attributes": "{}", "is_stub": True} for i in sorted(missing)],
            )
        return len(missing)

    def upsert_items(self, batch: Sequence[Item], conn: Any = None) -> tuple[int, int]:
        """Insert or replace catalog items. Returns (written, unchanged); an item
        repeated within the batch counts once as written, its repeats as unchanged."""
        if conn is None:
            with self.transaction() as conn:
                return self.upsert_items(batch, conn)
        rows = {item.item_id: _item_row(item) for item in batch}
        if not rows:
            return 0, 0
        current: dict[str, tuple] = {}
        if self.dialect == "sqlite":  # one JSON parameter instead of thousands of placeholders
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_SQLITE_CURRENT_ITEMS, (json.dumps(list(rows)),))
                current = {r[0]: r for r in cursor.fetchall()}
            finally:
                cursor.close()
        else:
            for chunk in _chunks(list(rows), 5000):
                for r in conn.execute(select(*[items.c[name] for name in _ITEM_COLUMNS]).where(items.c.item_id.in_(chunk))):
                    current[r[0]] = tuple(r)
        changed = [row for iid, row in rows.items() if not _same_item(current.get(iid), row)]
        if changed:
            if self.dialect == "sqlite":
                cursor = conn.connection.cursor()
                try:
                    cursor.executemany(_SQLITE_UPSERT_ITEM, changed)
                finally:
                    cursor.close()
            else:
                conn.execute(upsert(self.dialect, items, keys=["item_id"]),
                             [dict(zip(_ITEM_COLUMNS, row)) for row in changed])
        return len(changed), len(batch) - len(changed)

    def quarantine_rows(self, rows: Iterable[QuarantinedRow], conn: Any = None) -> None:
        """Record rejected rows. The same row of the same source (rerun of a
        file) stays one row: an open one gets the latest reason, a resolved one
        (its data already ingested after a fix) stays resolved."""
        if conn is None:
            with self.transaction() as conn:
                return self.quarantine_rows(rows, conn)
        now = _now_ms()
        payload: dict[str, dict] = {}
        for r in rows:
            payload[r.key()] = {"row_key": r.key(), "kind": r.kind, "source": r.source, "line_no": r.line_no,
                                "raw": r.raw, "reason": r.reason, "format": r.format,
                                "header": r.context(), "created_at": now}
        if payload:
            stmt = upsert(self.dialect, quarantine, keys=["row_key"], update=["reason"],
                          where=quarantine.c.resolved_at.is_(None))
            conn.execute(stmt, list(payload.values()))

    def fix_quarantine(self, qid: int, raw: str) -> None:
        """An operator's correction of a row's raw text; `retry` then validates it.

        The reason becomes a note until the retry gives the real verdict.
        """
        if "\x00" in raw:
            raise InputError("the corrected row contains a NUL character")
        with self.transaction() as conn:
            result = conn.execute(
                update(quarantine)
                .where(quarantine.c.id == qid, quarantine.c.resolved_at.is_(None))
                .values(raw=raw, reason="edited by an operator; not retried yet")
            )
            if result.rowcount != 1:
                raise NotFoundError(f"no open quarantined row with id {qid}")

    def resolve_quarantine(self, ids: Sequence[int], conn: Any) -> None:
        if ids:
            conn.execute(update(quarantine).where(quarantine.c.id.in_(list(ids))).values(resolved_at=_now_ms()))

    def update_quarantine_reason(self, qid: int, reason: str, conn: Any) -> None:
        conn.execute(update(quarantine).where(quarantine.c.id == qid).values(reason=reason))

    # ---- reads ---------------------------------------------------------
    def open_quarantine(self, limit: int | None = None, kind: str | None = None, ids: Sequence[int] | None = None) -> list[dict]:
        query = select(quarantine).where(quarantine.c.resolved_at.is_(None)).order_by(quarantine.c.id)
        if kind:
            query = query.where(quarantine.c.kind == kind)
        if ids:
            query = query.where(quarantine.c.id.in_(list(ids)))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def events_for_user(self, user_id: str, since_ts: int | None = None, until_seq: int | None = None) -> list[Event]:
        query = select(events).where(events.c.user_id == user_id)
        if since_ts is not None:
            query = query.where(events.c.ts >= since_ts)
        if until_seq is not None:
            query = query.where(events.c.seq <= until_seq)
        query = query.order_by(events.c.ts, events.c.seq)
        with self.engine.connect() as conn:
            return [_row_event(r) for r in conn.execute(query)]

    def user_exists(self, user_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(events.c.seq).where(events.c.user_id == user_id).limit(1)).first() is not None

    def get_item(self, item_id: str) -> Item:
        with self.engine.connect() as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
        if row is None:
            raise NotFoundError(f"no item {item_id!r} in the catalog")
        return _row_item(row)

    def items_by_id(self, item_ids: Iterable[str] | None = None) -> dict[str, Item]:
        query = select(items)
        wanted = None if item_ids is None else list(set(item_ids))
        out: dict[str, Item] = {}
        with self.engine.connect() as conn:
            if wanted is None:
                for r in conn.execute(query):
                    out[r.item_id] = _row_item(r)
            else:
                for chunk in _chunks(wanted, 5000):
                    for r in conn.execute(query.where(items.c.item_id.in_(chunk))):
                        out[r.item_id] = _row_item(r)
        return out

    def all_events(self) -> Iterator[Event]:
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=10000).execute(select(events).order_by(events.c.seq)):
                yield _row_event(r)

    def event_field_chunks(self, *columns: str, chunk: int = 20_000) -> Iterator[list[tuple]]:
        """The named columns of every event stored when the pass began, in seq order,
        `chunk` rows at a time: a pass over the whole store (the item side) holds one
        chunk of plain tuples, never every event, nor an Event object per row. Each
        chunk is read in a short transaction of its own, so a slow reader (the
        item-side process runs at idle priority) never keeps one snapshot open across
        the pass: in SQLite that holds back checkpoints, and an erasure's scrub waits
        for it."""
        end, after = self.last_seq(), 0  # seqs start at 1
        fields = [events.c[name] for name in columns]
        while after < end:
            query = select(events.c.seq, *fields).where(events.c.seq > after, events.c.seq <= end)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(events.c.seq).limit(chunk)).all()
            if not rows:
                return
            after = rows[-1][0]
            yield [tuple(r)[1:] for r in rows]

    def user_last_seqs(self, user_ids: Sequence[str] | None = None) -> dict[str, int]:
        query = select(events.c.user_id, func.max(events.c.seq)).group_by(events.c.user_id)
        if user_ids is not None:
            query = query.where(events.c.user_id.in_(list(user_ids)))
        with self.engine.connect() as conn:
            return {u: s for u, s in conn.execute(query)}

    def users_after(self, after_seq: int) -> tuple[list[str], int]:
        """Users with events stored after `after_seq`, and the last seq among them
        (`after_seq` if none): how a process that did not take the events follows them."""
        # grouped here, not in SQL: with GROUP BY, SQLite scanned every event through
        # the user index (a third of the live process's time at 300 events/s)
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.user_id, events.c.seq).where(events.c.seq > after_seq)).all()
        return sorted({u for u, _ in rows}), max((s for _, s in rows), default=after_seq)

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(events.c.seq))).scalar() or 0

    def event_id_at(self, seq: int) -> str | None:
        """The event stored under `seq` (SQLite hands a seq out again once the newest rows are gone)."""
        with self.engine.connect() as conn:
            return conn.execute(select(events.c.event_id).where(events.c.seq == seq)).scalar()

    def users_with_events_since(self, since_ts: int) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(select(events.c.user_id).where(events.c.ts >= since_ts).distinct()).scalars())

    def recent_users(self, limit: int) -> list[str]:
        """The `limit` users with the newest events, newest first."""
        last = func.max(events.c.seq)
        query = select(events.c.user_id).group_by(events.c.user_id).order_by(last.desc()).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def lagging_users(self, user_ids: Sequence[str] | None = None) -> list[str]:
        """Users with events newer than their latest profile version (or none);
        only among `user_ids` when given."""
        last_query = select(events.c.user_id, func.max(events.c.seq).label("seq")).group_by(events.c.user_id)
        if user_ids is not None:
            if not user_ids:
                return []
            last_query = last_query.where(events.c.user_id.in_(list(user_ids)))
        last = last_query.subquery()
        query = (
            select(last.c.user_id)
            .select_from(last.outerjoin(profile_heads, profile_heads.c.user_id == last.c.user_id))
            .where(or_(profile_heads.c.user_id.is_(None), last.c.seq > profile_heads.c.last_event_seq))
            .where(~exists().where(profiling_optouts.c.user_id == last.c.user_id))  # opted out: never profiled
            .order_by(last.c.user_id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def is_lagging(self, user_id: str) -> bool:
        """Whether the user has events newer than their profile head (or events and
        no profile): two index lookups, cheap enough for every API read."""
        last = select(func.max(events.c.seq)).where(events.c.user_id == user_id).scalar_subquery()
        head = select(profile_heads.c.last_event_seq).where(profile_heads.c.user_id == user_id).scalar_subquery()
        out = select(profiling_optouts.c.user_id).where(profiling_optouts.c.user_id == user_id).scalar_subquery()
        with self.engine.connect() as conn:
            last_seq, head_seq, opted_out = conn.execute(select(last, head, out)).one()
        return last_seq is not None and opted_out is None and (head_seq is None or last_seq > head_seq)

    def status(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            users = conn.execute(select(func.count(events.c.user_id.distinct()))).scalar_one()
            n_items = conn.execute(select(func.count()).select_from(items)).scalar_one()
            stubs = conn.execute(select(func.count()).select_from(items).where(items.c.is_stub.is_(True))).scalar_one()
            by_type = dict(conn.execute(select(events.c.type, func.count()).group_by(events.c.type).order_by(events.c.type)).all())
            first, last = conn.execute(select(func.min(events.c.ts), func.max(events.c.ts))).one()
            quarantined = conn.execute(
                select(func.count()).select_from(quarantine).where(quarantine.c.resolved_at.is_(None))
            ).scalar_one()
            profiles = conn.execute(select(func.count()).select_from(profile_heads)).scalar_one()
            narratives_stale = conn.execute(
                select(func.count()).select_from(profile_heads).where(profile_heads.c.narrative_source == "stale")
            ).scalar_one()
        return {
            "users": users,
            "items": n_items,
            "stub_items": stubs,
            "events": sum(by_type.values()),
            "events_by_type": by_type,
            # None when absent, or when an older version stored an unrenderable timestamp
            "first_event_at": iso_or_none(first),
            "last_event_at": iso_or_none(last),
            "quarantined": quarantined,
            "profiles": profiles,
            "profiles_stale": len(self.lagging_users()),
            "narratives_stale": narratives_stale,
        }


_EVENT_COLUMNS = ("event_id", "user_id", "item_id", "type", "ts", "value", "text")
_PG_USER_LOCK_SPACE = int.from_bytes(b"tbev", "big")  # first key of pg_advisory_xact_lock(int4, int4): event writers
_PG_LOCK_USERS = sql_text(
    "SELECT count(pg_advisory_xact_lock(:space, h)) FROM "
    "(SELECT DISTINCT hashtext(u) AS h FROM unnest(CAST(:users AS text[])) AS u ORDER BY h) AS ordered"
)
_SQLITE_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
_SQLITE_UPSERT_ITEM = (
    f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(_ITEM_COLUMNS))}) "
    f"ON CONFLICT (item_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _ITEM_COLUMNS[1:])}"
)
_SQLITE_CURRENT_ITEMS = (
    f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items WHERE item_id IN (SELECT value FROM json_each(?))"
)
_SQLITE_INSERT_STUB = (
    "INSERT INTO items (item_id, categories, tags, attributes, is_stub) VALUES (?, '[]', '[]', '{}', 1) "
    "ON CONFLICT DO NOTHING"
)


def _same_item(current: tuple | None, row: tuple) -> bool:
    if current is None:
        return False
    return current[:-1] == row[:-1] and bool(current[-1]) == row[-1]


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


SQLITE_POOL = 16  # connections kept: as many as a server's request threads (see _make_engine)

# Every SQLite connection of the store gets these (the ingest bench gives its raw baseline the same).
# WAL lets readers run during ingestion; NORMAL syncs at checkpoints, not at every commit. The
# default auto-checkpoint (1,000 pages, 4 MiB) made batched ingestion checkpoint, with two
# fsyncs, at almost every batch commit (then 5,000 rows); 16,384 pages (64 MiB) checkpoints a few times per
# 100k events, and journal_size_limit shrinks the WAL file back afterwards.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA wal_autocheckpoint=16384",
    "PRAGMA journal_size_limit=67108864",
)


def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot open event store at {url}: {exc.strerror}: {exc.filename}") from exc
        # a pool as large as a server's request threads: a connection opened past the
        # pool is closed after use, and its pragmas (WAL takes a lock) run on every open
        pool = {"pool_size": SQLITE_POOL, "max_overflow": SQLITE_POOL} if path and path != ":memory:" and "///" in url else {}
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def default_cache_dir(store: EventStore) -> Path | None:
    """Where a home's caches live (the item side, the local copy of profile vectors):
    next to a SQLite database; None (no disk cache) for other engines or in-memory.
    Here rather than in retrieval.service, so `tastebud forget` finds it without scipy."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().resolve().parent / "cache"
