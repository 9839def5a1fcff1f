"""`tastebud doctor`: find stored rows that break the value rules or disagree with
each other, and (with fix) repair what can be repaired.

Today's validation keeps bad values out at ingestion, but a store may hold rows
an older version accepted or a direct database write left behind. Reads survive
them (see tastebud.timefmt and the store's lenient catalog reads); the doctor
finds them:

- `bad_event`: an event whose timestamp lies outside 1970-01-01 .. now + skew
  (or is not an integer), whose value is not a finite number on the rating
  scale (every value, as ingestion checks it), whose text is not a string or
  is too long, whose ids are not strings or are longer than the id columns,
  whose type is unknown, or that lacks what its type needs (a rating's value,
  a review's text, an item). Fix: the row moves to
  the quarantine table (source `doctor`, line = the event's seq, raw = the row
  as JSON, reason = the rules broken) and is deleted from `events`, in one
  transaction; `tastebud quarantine fix/retry` work on it like on any other row.
- `bad_item`: a catalog row with unusable fields (not-JSON categories, a
  non-string or too long title/description, an over-long id). Fix: quarantined
  (kind `catalog`) and replaced by a stub, so events naming it still resolve;
  retrying the corrected row restores it.
- `missing_item`: events name an item that has no catalog row. Fix: a stub is
  created, as ingestion does.
- `broken_profile_head`: a profile head points at a version that is not stored.
  Fix: the head moves back to the user's latest stored version (or is removed
  when none is left), then the profile is recomputed.
- `stale_profile`: a user's profile lags their events: it is older than their
  latest event, has none yet, covers events that are no longer stored, or
  exists for a user with no events. Fix: recomputed (computed parts only, narratives marked stale, as
  `tastebud refresh --no-narratives` does); a profile of a user with no events
  left loses its head (its versions stay, for history).
- `orphan_vector`: a profile vector in Chroma whose user has no profile. Fix: deleted.
- `stub_item` (a notice, not a problem): an item known only from events; only
  catalog data can fill it in, so it never fails the check.

Every fix is idempotent: a second run finds nothing it fixed. The rules a row
is judged by are in tastebud.profiles.doctor_rules.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

from sqlalchemy import and_, delete, func, or_, select, update

from tastebud.profiles.doctor_rules import (TEXT_TYPES, event_dict, event_problems, event_raw, item_problems, item_raw,
                                            jsonable)
from tastebud.profiles.events import EVENT_TYPES, ITEMLESS_TYPES, MAX_ID_LENGTH, MAX_VALUE, ValueRules
from tastebud.profiles.migrations import events, items, profile_heads, profile_versions, quarantine
from tastebud.profiles.store import EventStore, QuarantinedRow

log = logging.getLogger("tastebud.doctor")

SOURCE = "doctor"
ERROR, NOTICE = "error", "notice"
KINDS = ("bad_event", "bad_item", "missing_item", "broken_profile_head", "stale_profile", "orphan_vector", "stub_item")


@dataclass
class Finding:
    kind: str
    target: str  # what is wrong: "event 123", "item m1", "user 7", "vector 7:long"
    reason: str
    user_id: str | None = None
    severity: str = ERROR
    row: dict[str, Any] | None = None  # the stored row, for rows the fix quarantines

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "severity": self.severity, "target": self.target, "user_id": self.user_id,
               "reason": self.reason}
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)  # what remains (after the fix, when fixing)
    fixed: dict[str, int] | None = None  # what the fix did; None when only checking
    found: list[Finding] | None = None  # what the fix started from
    skipped: list[str] = field(default_factory=list)  # checks that could not run, and why

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def notices(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != ERROR]

    def counts(self, findings: Iterable[Finding] | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings if findings is None else findings:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": not self.problems,
            "problems": len(self.problems),
            "notices": len(self.notices),
            "counts": self.counts(),
            "findings": [f.as_dict() for f in self.findings],
            "skipped": self.skipped,
        }
        if self.fixed is not None:
            out["fixed"] = self.fixed
            out["found_before_fix"] = self.counts(self.found or [])
        return out


class ProfileVectors(Protocol):
    """What the doctor needs of the vector store (tastebud.retrieval.vectors.VectorStore has it)."""

    def profile_records(self) -> list[tuple[str, str]]: ...

    def delete_profile_vectors(self, ids: Sequence[str]) -> int: ...


class Doctor:
    def __init__(
        self,
        store: EventStore,
        rules: ValueRules | None = None,
        vectors: ProfileVectors | Callable[[], ProfileVectors] | None = None,
        refresher: Callable[[], Any] | None = None,
        now_ms: Callable[[], int] | None = None,
    ):
        """vectors: the vector store, or a function that opens it (only when needed);
        None skips the orphan-vector check. refresher: a function returning a
        `tastebud.profiles.refresh.Refresher` without narratives, for the fix."""
        self.store = store
        self.rules = rules or ValueRules()
        self._vectors = vectors
        self._refresher = refresher
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))

    # ------------------------------------------------------------ checks
    def latest_ms(self) -> int:
        return self._now_ms() + self.rules.future_skew_ms

    def _bad_event_filter(self, latest: int):
        """A cheap SQL pre-filter: every row a rule might reject, and few others."""
        c, r = events.c, self.rules
        conds = [
            c.ts < 0, c.ts > latest,
            and_(c.type == "rating", or_(c.value < r.rating_min, c.value > r.rating_max)),
            c.value > MAX_VALUE, c.value < -MAX_VALUE,
            func.length(c.text) > r.max_text_chars,
            func.length(c.event_id) > MAX_ID_LENGTH, func.length(c.user_id) > MAX_ID_LENGTH,
            func.length(c.item_id) > MAX_ID_LENGTH,
            func.length(func.trim(c.user_id)) == 0, func.length(func.trim(c.event_id)) == 0,
            c.type.not_in(sorted(EVENT_TYPES)),
            and_(c.type == "rating", c.value.is_(None)),
            and_(c.text.is_(None), c.type.in_(sorted(TEXT_TYPES))),
            and_(c.item_id.is_(None), c.type.not_in(sorted(ITEMLESS_TYPES))),
        ]
        if self.store.dialect == "sqlite":  # SQLite keeps whatever type was written
            typeof = func.typeof
            conds += [
                typeof(c.ts) != "integer",
                typeof(c.value).not_in(("real", "integer", "null")),
                typeof(c.text).not_in(("text", "null")),
                typeof(c.event_id) != "text", typeof(c.user_id) != "text",
                typeof(c.item_id).not_in(("text", "null")),
            ]
        return or_(*conds)

    def bad_events(self, conn: Any = None) -> list[Finding]:
        if conn is None:
            with self.store.engine.connect() as conn:
                return self.bad_events(conn)
        latest = self.latest_ms()
        rows = conn.execute(select(events).where(self._bad_event_filter(latest)).order_by(events.c.seq)).mappings()
        out = []
        for row in rows:
            reasons = event_problems(row, self.rules, latest)
            if reasons:
                user = row["user_id"] if isinstance(row["user_id"], str) else jsonable(row["user_id"])
                out.append(Finding("bad_event", f"event {row['seq']}", "; ".join(reasons), user,
                                   row=event_dict(row)))
        return out

    def bad_items(self, conn: Any = None) -> list[Finding]:
        if conn is None:
            with self.store.engine.connect() as conn:
                return self.bad_items(conn)
        latest = self.latest_ms()
        out = []
        for row in conn.execute(select(items).order_by(items.c.item_id)).mappings():
            reasons = item_problems(row, self.rules, latest)
            if reasons:
                out.append(Finding("bad_item", f"item {jsonable(row['item_id'])}", "; ".join(reasons),
                                   row={k: jsonable(v) for k, v in row.items()}))
        return out

    def missing_items(self, conn: Any = None) -> list[Finding]:
        if conn is None:
            with self.store.engine.connect() as conn:
                return self.missing_items(conn)
        query = (
            select(events.c.item_id, func.count())
            .select_from(events.outerjoin(items, items.c.item_id == events.c.item_id))
            .where(events.c.item_id.is_not(None), items.c.item_id.is_(None))
            .group_by(events.c.item_id).order_by(events.c.item_id)
        )
        return [Finding("missing_item", f"item {jsonable(iid)}", f"{n} event(s) name it, but it has no catalog row")
                for iid, n in conn.execute(query)]

    def stub_items(self, conn: Any = None) -> list[Finding]:
        if conn is None:
            with self.store.engine.connect() as conn:
                return self.stub_items(conn)
        query = select(items.c.item_id).where(items.c.is_stub.is_(True)).order_by(items.c.item_id)
        return [Finding("stub_item", f"item {iid}", "a stub: no catalog data (ingest its catalog row, or fix it in the quarantine)",
                        severity=NOTICE) for iid in conn.execute(query).scalars()]

    def profile_findings(self, conn: Any = None) -> list[Finding]:
        """Broken heads, then profiles lagging their events (one finding per user, the worst first)."""
        if conn is None:
            with self.store.engine.connect() as conn:
                return self.profile_findings(conn)
        broken = self._broken_heads(conn)
        out = [Finding("broken_profile_head", f"user {u}", f"profile head points at version {v}, which is not stored", u)
               for u, v in broken.items()]
        last = select(events.c.user_id, func.max(events.c.seq).label("seq")).group_by(events.c.user_id).subquery()
        behind = conn.execute(
            select(last.c.user_id, last.c.seq, profile_heads.c.last_event_seq, profile_heads.c.version)
            .select_from(last.outerjoin(profile_heads, profile_heads.c.user_id == last.c.user_id))
            .where(or_(profile_heads.c.user_id.is_(None), last.c.seq != profile_heads.c.last_event_seq))
            .order_by(last.c.user_id)
        ).all()
        for user, seq, head_seq, version in behind:
            if user in broken:
                continue
            if head_seq is None:
                reason = "user has events but no profile yet"
            elif seq > head_seq:
                reason = f"profile v{version} covers events up to seq {head_seq}; the latest event is seq {seq}"
            else:
                reason = f"profile v{version} covers events up to seq {head_seq}, but events after seq {seq} are gone"
            out.append(Finding("stale_profile", f"user {user}", reason, user))
        eventless = conn.execute(
            select(profile_heads.c.user_id, profile_heads.c.version)
            .where(~select(events.c.seq).where(events.c.user_id == profile_heads.c.user_id).exists())
            .order_by(profile_heads.c.user_id)
        ).all()
        out += [Finding("stale_profile", f"user {u}", f"profile v{v} exists but the user has no events", u)
                for u, v in eventless if u not in broken]
        return out

    @staticmethod
    def _broken_heads(conn: Any) -> dict[str, int]:
        query = (
            select(profile_heads.c.user_id, profile_heads.c.version)
            .select_from(profile_heads.outerjoin(profile_versions, and_(
                profile_versions.c.user_id == profile_heads.c.user_id,
                profile_versions.c.version == profile_heads.c.version)))
            .where(profile_versions.c.user_id.is_(None))
            .order_by(profile_heads.c.user_id)
        )
        return dict(conn.execute(query).all())

    def vectors(self) -> ProfileVectors | None:
        if callable(self._vectors) and not hasattr(self._vectors, "profile_records"):
            self._vectors = self._vectors()
        return self._vectors  # type: ignore[return-value]

    def orphan_vectors(self, skipped: list[str] | None = None) -> list[Finding]:
        try:
            vectors = self.vectors()
            if vectors is None:
                if skipped is not None:
                    skipped.append("orphan_vector: no vector store to check (nothing indexed yet)")
                return []
            records = vectors.profile_records()
        except Exception as exc:  # noqa: BLE001 - an unreachable Chroma is a skipped check, not a crash
            if skipped is not None:
                skipped.append(f"orphan_vector: vector store unavailable ({type(exc).__name__}: {exc})")
            return []
        with self.store.engine.connect() as conn:
            known = set(conn.execute(select(profile_heads.c.user_id)).scalars())
        return [Finding("orphan_vector", f"vector {rid}", f"user {user} has no profile", user)
                for rid, user in sorted(records) if user not in known]

    def check(self) -> DoctorReport:
        report = DoctorReport()
        with self.store.engine.connect() as conn:
            report.findings += self.bad_events(conn)
            report.findings += self.bad_items(conn)
            report.findings += self.missing_items(conn)
            report.findings += self.profile_findings(conn)
        report.findings += self.orphan_vectors(report.skipped)
        with self.store.engine.connect() as conn:
            report.findings += self.stub_items(conn)
        return report

    # ------------------------------------------------------------ fix
    def fix(self) -> DoctorReport:
        """Repair what can be repaired, then check again: the report lists what remains."""
        before = self.check()
        fixed = {"events_quarantined": 0, "items_quarantined": 0, "stubs_created": 0, "heads_repointed": 0,
                 "heads_rewound": 0, "heads_removed": 0, "profiles_recomputed": 0, "vectors_deleted": 0}
        affected: set[str] = set()
        with self.store.transaction() as conn:
            affected |= self._quarantine_events(conn, fixed)
            self._quarantine_items(conn, fixed)
            missing = [iid for iid in conn.execute(
                select(events.c.item_id)
                .select_from(events.outerjoin(items, items.c.item_id == events.c.item_id))
                .where(events.c.item_id.is_not(None), items.c.item_id.is_(None)).distinct()).scalars()]
            if missing:
                self.store._ensure_items(conn, set(missing))
                fixed["stubs_created"] += len(missing)
            affected |= self._repair_heads(conn, fixed)
        lagging = {f.user_id for f in self.profile_findings() if f.user_id is not None}
        with self.store.engine.connect() as conn:
            with_events = set(conn.execute(select(events.c.user_id).distinct()).scalars())
        to_refresh = sorted((affected | lagging) & with_events)
        if to_refresh:
            if self._refresher is None:
                before.skipped.append("stale_profile: no refresher given; profiles not recomputed")
            else:
                report = self._refresher().refresh(to_refresh, narratives=False)
                fixed["profiles_recomputed"] = report.users
        skipped: list[str] = []
        orphans = self.orphan_vectors(skipped)
        if orphans:
            fixed["vectors_deleted"] = self.vectors().delete_profile_vectors(  # type: ignore[union-attr]
                [f.target.split(" ", 1)[1] for f in orphans])
        after = self.check()
        after.fixed, after.found = fixed, before.findings
        after.skipped = list(dict.fromkeys(before.skipped + skipped + after.skipped))
        if any(fixed.values()):
            log.info("doctor fixed: %s", ", ".join(f"{k} {v}" for k, v in fixed.items() if v))
        return after

    def _quarantine_events(self, conn: Any, fixed: dict[str, int]) -> set[str]:
        """Bad event rows into the quarantine and out of `events`, in the caller's transaction."""
        bad = self.bad_events(conn)
        if not bad:
            return set()
        rows = [QuarantinedRow("events", SOURCE, int(f.row["seq"]), event_raw(f.row), f.reason, "jsonl")
                for f in bad if f.row is not None]
        self._quarantine(rows, conn)
        seqs = [int(f.row["seq"]) for f in bad if f.row is not None]
        for start in range(0, len(seqs), 5000):
            conn.execute(delete(events).where(events.c.seq.in_(seqs[start:start + 5000])))
        fixed["events_quarantined"] += len(seqs)
        return {f.user_id for f in bad if isinstance(f.user_id, str)}

    def _quarantine(self, rows: Sequence[QuarantinedRow], conn: Any) -> None:
        """Record the rows as open quarantine rows. The store keeps a resolved row
        resolved when the same row comes again (a rerun of a file); here the data is
        being taken out of the store, so a row with the same key (a reused seq, the
        same content, retried earlier) is opened again rather than lost."""
        self.store.quarantine_rows(rows, conn)
        for r in rows:
            conn.execute(update(quarantine).where(quarantine.c.row_key == r.key(), quarantine.c.resolved_at.is_not(None))
                         .values(resolved_at=None, reason=r.reason))

    def _quarantine_items(self, conn: Any, fixed: dict[str, int]) -> None:
        """Bad catalog rows into the quarantine, replaced by stubs (an id no
        column can hold is removed instead: events naming it were quarantined)."""
        bad = self.bad_items(conn)
        if not bad:
            return
        rows = []
        for f in bad:
            row = f.row or {}
            rows.append(QuarantinedRow("catalog", SOURCE, 0, item_raw(row), f.reason, "jsonl"))
        self._quarantine(rows, conn)
        for f in bad:
            item_id = (f.row or {}).get("item_id")
            unusable_id = not isinstance(item_id, str) or len(item_id) > MAX_ID_LENGTH
            where = items.c.item_id == item_id
            if unusable_id:
                conn.execute(delete(items).where(where))
            else:
                conn.execute(update(items).where(where).values(
                    title=None, description=None, categories="[]", tags="[]", attributes="{}", updated_at=None,
                    is_stub=True))
        fixed["items_quarantined"] += len(bad)

    def _repair_heads(self, conn: Any, fixed: dict[str, int]) -> set[str]:
        """Heads the Refresher cannot save over: one pointing at a missing version
        goes back to the latest stored one; one covering events no longer stored
        comes down to the user's latest event; one of a user with no events left
        is removed (versions stay, for history). Returns the users to recompute."""
        users: set[str] = set()
        for user, _version in self._broken_heads(conn).items():
            latest = conn.execute(
                select(profile_versions.c.version, profile_versions.c.last_event_seq, profile_versions.c.narrative_source)
                .where(profile_versions.c.user_id == user).order_by(profile_versions.c.version.desc()).limit(1)
            ).first()
            if latest is None:
                conn.execute(delete(profile_heads).where(profile_heads.c.user_id == user))
                fixed["heads_removed"] += 1
            else:
                conn.execute(update(profile_heads).where(profile_heads.c.user_id == user).values(
                    version=latest.version, last_event_seq=latest.last_event_seq,
                    narrative_source=latest.narrative_source, updated_at=self._now_ms()))
                fixed["heads_repointed"] += 1
            users.add(user)
        last = select(events.c.user_id, func.max(events.c.seq).label("seq")).group_by(events.c.user_id).subquery()
        ahead = conn.execute(
            select(profile_heads.c.user_id, last.c.seq)
            .select_from(profile_heads.outerjoin(last, last.c.user_id == profile_heads.c.user_id))
            .where(or_(last.c.seq.is_(None), profile_heads.c.last_event_seq > last.c.seq))
        ).all()
        for user, seq in ahead:
            if seq is None:
                conn.execute(delete(profile_heads).where(profile_heads.c.user_id == user))
                fixed["heads_removed"] += 1
            else:
                conn.execute(update(profile_heads).where(profile_heads.c.user_id == user)
                             .values(last_event_seq=seq, updated_at=self._now_ms()))
                fixed["heads_rewound"] += 1
                users.add(user)
        return users
