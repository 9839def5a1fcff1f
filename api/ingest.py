"""POST /v1/events: the file-ingestion rules, one answer per event.

Each event is read as a JSONL line would be (`profiles.ingest.read_event_objects`),
so aliases and reasons are those of `tastebud ingest events`. Good events and
the quarantined rejects (source `api`, line = index in the request) are
committed in one transaction before the answer is sent; a rejected event never
fails the good ones. A user key may post only its own events: one event for
anyone else refuses the whole request, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from agent.roles import Role
from api.keys import ApiKey
from profiles.events import RowError, event_fields
from profiles.ingest import read_event_objects
from profiles.store import EventStore, QuarantinedRow
from tastebud.errors import PermissionDenied

SOURCE = "api"


@dataclass
class Outcome:
    results: list[dict[str, Any]]
    accepted_users: list[str]

    def as_dict(self) -> dict[str, Any]:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for r in self.results:
            counts[r["status"]] += 1
        return {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "rejected": counts["rejected"],
                "results": self.results}


def _claimed_user(fields: Any) -> str | None:
    """The user a rejected event names, when it names one plainly (for the user-key check)."""
    raw = (fields or {}).get("user_id")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip() or None


def ingest(store: EventStore, key: ApiKey, objects: Sequence[Any]) -> Outcome:
    good: list[tuple] = []
    good_index: list[int] = []
    bad: list[QuarantinedRow] = []
    results: list[dict[str, Any]] = [{} for _ in objects]
    users: set[str] = set()
    for index, raw, fields, error in read_event_objects(objects):
        if fields is not None:
            try:
                row = event_fields(fields)
            except RowError as exc:
                error = str(exc)
            else:
                good.append(row)
                good_index.append(index)
                users.add(row[1])
                continue
        error = error or "unreadable row"
        claimed = _claimed_user(fields)
        if claimed:
            users.add(claimed)
        bad.append(QuarantinedRow("events", SOURCE, index, raw, error, "jsonl"))
        results[index] = {"index": index, "status": "rejected", "event_id": None, "reason": error}
    if key.role == Role.USER.value and users - {key.user_id}:
        raise PermissionDenied("a user key may post only its own user's events")
    inserted = store.append_event_rows(good, bad)
    accepted_users: dict[str, None] = {}
    for index, row in zip(good_index, good):
        new = row[0] in inserted
        inserted.discard(row[0])  # a repeat later in the same request is a duplicate
        results[index] = {"index": index, "status": "accepted" if new else "duplicate", "event_id": row[0]}
        if new:
            accepted_users[row[1]] = None
    return Outcome(results, list(accepted_users))
