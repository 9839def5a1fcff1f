"""Data rights over every store that holds a user (docs/design.md#privacy):
`forget` removes them everywhere, `export` hands back everything held.

The stores are passed in by the composition root: the event store (events,
profiles, log, queue, keys, quarantine: `tastebud.profiles.erasure`), the
vector store (profile vectors), the saved
chat sessions (a `SessionFiles`), the home's log files, and callbacks that drop
what a running process holds in memory. Forgetting is idempotent: every step
removes what is left, so an interrupted forget is finished by running it again.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from sqlalchemy import select

from tastebud.errors import NotFoundError
from tastebud.profiles.erasure import add_to_latest_erasure, erase_profile_rows, erase_user_rows, quarantine_ids
from tastebud.profiles.migrations import api_keys, quarantine, rec_items, rec_requests
from tastebud.profiles.optout import opt_out_record, record_opt_out, remove_opt_out
from tastebud.profiles.store import EventStore
from tastebud.profiles.versions import ProfileRepository
from tastebud.retrieval.why import render_why
from tastebud.timefmt import iso_or_none

EXPORT_FORMAT = "tastebud-export/1"
SCHEMA_FILE = Path(__file__).with_name("export.schema.json")
ITEM_SIDE_NOTE = ("popularity and co-occurrence learned from these events are rebuilt on the next item-side "
                  "refresh (`tastebud serve` does it in the background; a one-shot command on its next read)")


class SessionFiles(Protocol):
    def about(self, user_id: str) -> list[tuple[Path, dict[str, Any]]]: ...
    def erase(self, user_id: str) -> int: ...


def export_schema() -> dict[str, Any]:
    """The JSON Schema of an export document (shipped with the package)."""
    return json.loads(SCHEMA_FILE.read_text())


@dataclass
class Privacy:
    store: EventStore
    vectors: Callable[[], Any]  # the VectorStore, opened only when called
    home: Path
    sessions: SessionFiles
    forgotten_hooks: Sequence[Callable[[str], None]] = field(default_factory=tuple)  # in-memory caches

    # ------------------------------------------------------------------ forget
    def forget(self, user_id: str, requested_by: str) -> dict[str, Any]:
        """Remove the user from every store; one audit row without the id stays.
        The database goes first, in one transaction, so events arriving after it
        start a new profile; the other stores follow, and a rerun finishes them."""
        t0 = time.perf_counter()
        rows = erase_user_rows(self.store, user_id, requested_by)
        for hook in self.forgotten_hooks:
            hook(user_id)
        others = {"profile_vectors": self.vectors().erase_user(user_id)}
        others["chat_sessions"] = self.sessions.erase(user_id)
        others["log_lines"] = scrub_logs(self.home / "logs", user_id)
        add_to_latest_erasure(self.store, user_id, others)
        removed = {**rows, **others}
        return {"forgotten": True, "removed": removed, "total": sum(removed.values()),
                "item_side": ITEM_SIDE_NOTE, "seconds": round(time.perf_counter() - t0, 3)}

    # ------------------------------------------------------------------ opt-out
    def drop_profiles(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Remove the users' profiles from every store (versions, heads, narrative-queue
        rows, profile vectors in Chroma, what memory holds), keeping
        their events and keys: opted-out users, and users left without events by
        retention. Idempotent. Returns what went, per store."""
        users = sorted(set(user_ids))
        removed = dict(erase_profile_rows(self.store, users))
        if not users:
            return removed
        for user in users:
            for hook in self.forgotten_hooks:
                hook(user)
        vectors = self.vectors()
        removed["profile_vectors"] = sum(vectors.erase_user(u) for u in users)
        return removed

    def opt_out(self, user_id: str, requested_by: str) -> dict[str, Any]:
        """Stop profiling the user until they opt back in: the record first (so a
        refresh running meanwhile makes nothing new), then their profile goes from
        every store. Events and keys stay; recommendations become popularity only.
        Safe to repeat: a repeat finishes an interrupted removal."""
        new = record_opt_out(self.store, user_id, requested_by)
        removed = self.drop_profiles([user_id])
        return {"user_id": user_id, "opted_out": True, "already": not new, "removed": removed,
                "kept": ["events", "api_keys", "recommendation_log"],
                "recommendations": "popularity only, without items already seen, until opted back in"}

    def opt_in(self, user_id: str) -> dict[str, Any]:
        """Profile the user again: the next refresh (or read, on a server) rebuilds the profile."""
        was = remove_opt_out(self.store, user_id)
        return {"user_id": user_id, "opted_out": False, "was_opted_out": was,
                "profile": "rebuilt from the kept events on the next refresh"}

    def profiling(self, user_id: str) -> dict[str, Any]:
        record = opt_out_record(self.store, user_id)
        return {"opted_out": record is not None, "since": iso_or_none(record["opted_out_at"]) if record else None}

    # ------------------------------------------------------------------ export
    def export(self, user_id: str) -> dict[str, Any]:
        """Everything held about the user, as one JSON-ready document (export.schema.json)."""
        events = [{"event_id": e.event_id, "item_id": e.item_id, "type": e.type, "ts_ms": e.ts,
                   "timestamp": iso_or_none(e.ts), "value": e.value, "text": e.text}
                  for e in self.store.events_for_user(user_id)]
        versions = [{"version": v["version"], "created_at": iso_or_none(v["created_at"]),
                     "narrative_source": v["narrative_source"], "last_event_seq": v["last_event_seq"],
                     "trigger_event_ids": v["trigger_event_ids"], "profile": v["data"]}
                    for v in ProfileRepository(self.store).versions(user_id)]
        recommendations = self._recommendations(user_id)
        sessions = [data for _, data in self.sessions.about(user_id)]
        with self.store.engine.connect() as conn:
            keys = [{"key_id": r.key_id, "role": r.role, "name": r.name, "created_at": iso_or_none(r.created_at),
                     "revoked_at": iso_or_none(r.revoked_at), "last_used_at": iso_or_none(r.last_used_at)}
                    for r in conn.execute(select(api_keys).where(api_keys.c.user_id == user_id)
                                          .order_by(api_keys.c.created_at))]
            qids = quarantine_ids(conn, user_id)
            rejected = [{"source": r.source, "line_no": r.line_no, "raw": r.raw, "reason": r.reason,
                         "created_at": iso_or_none(r.created_at)}
                        for r in conn.execute(select(quarantine).where(quarantine.c.id.in_(qids))
                                              .order_by(quarantine.c.id))] if qids else []
        profiling = self.profiling(user_id)
        if not (events or versions or recommendations or sessions or keys or rejected or profiling["opted_out"]):
            raise NotFoundError(f"nothing is held about user {user_id!r}")
        return {"profiling": profiling, "format": EXPORT_FORMAT, "user_id": user_id, "exported_at": iso_or_none(int(time.time() * 1000)),
                "events": events, "profile_versions": versions, "recommendations": recommendations,
                "chat_sessions": sessions, "api_keys": keys, "quarantined_rows": rejected}

    def _recommendations(self, user_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            requests = conn.execute(select(rec_requests).where(rec_requests.c.user_id == user_id)
                                    .order_by(rec_requests.c.created_at)).mappings().all()
            rows = conn.execute(select(rec_items).where(rec_items.c.user_id == user_id)
                                .order_by(rec_items.c.request_id, rec_items.c.rank)).mappings().all()
        by_request: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            entry = {"item_id": r["item_id"], "rank": r["rank"], "score": r["score"],
                     "parts": json.loads(r["parts"]), "evidence": json.loads(r["evidence"])}
            try:
                entry["reasons"] = render_why(entry)
            except Exception:  # noqa: BLE001 - an old log row the renderer cannot read still exports
                entry["reasons"] = []
            by_request.setdefault(r["request_id"], []).append(entry)
        return [{"request_id": q["request_id"], "created_at": iso_or_none(q["created_at"]), "source": q["source"],
                 "profile_version": q["profile_version"], "params": json.loads(q["params"]),
                 "items": by_request.get(q["request_id"], [])} for q in requests]


def scrub_logs(folder: Path, user_id: str) -> int:
    """Drop the lines about the user from every log file under the home's logs/:
    a JSON line whose `user` is the user or whose path has the id as a segment,
    any other line that has the id as a word. Rewritten in place (a server's open
    handle keeps appending to the same file). Returns the lines removed."""
    if not folder.is_dir():
        return 0
    word = re.compile(rf"(?<![\w-]){re.escape(user_id)}(?![\w-])")
    removed = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            with open(path, "r+b") as fh:
                data = fh.read()
                if user_id.encode("utf-8", "surrogatepass") not in data:
                    continue
                kept = []
                for line in data.decode("utf-8", "surrogateescape").splitlines(keepends=True):
                    if _line_about(line, user_id, word):
                        removed += 1
                    else:
                        kept.append(line)
                fh.seek(0)
                fh.write("".join(kept).encode("utf-8", "surrogateescape"))
                fh.truncate()
        except OSError:
            continue
    return removed


def _line_about(line: str, user_id: str, word: re.Pattern[str]) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):  # only its string values: a number never names a user
        return any(isinstance(v, str) and (v == user_id or user_id in v.split("/") or word.search(v))
                   for v in record.values())
    return bool(word.search(line))
