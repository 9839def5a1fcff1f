"""POST /v1/events: the file-ingestion rules, one answer per event.

Each event is read as a JSONL line would be (`tastebud.profiles.readers.read_event_objects`),
so aliases and reasons are those of `tastebud ingest events`. Good events and
the quarantined rejects (source `api`, line = index in the request) are
committed in one transaction before the answer is sent; a rejected event never
fails the good ones. A user key may post only its own events: one event for
anyone else refuses the whole request, and nothing is written; an event_id a
user key chooses is scoped to its user (see _scoped_to_user).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from tastebud import pii
from tastebud.agent.roles import Role
from tastebud.api.keys import ApiKey
from tastebud.profiles.events import DEFAULT_RULES, RowError, ValueRules, event_fields, stable_event_id
from tastebud.profiles.readers import EVENT_ALIASES, read_event_objects
from tastebud.profiles.store import EventStore, QuarantinedRow
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


_USER_ALIASES = frozenset(EVENT_ALIASES["user_id"])


def _user_field(obj: Any) -> Any:
    """The user field of an event the JSONL reader could not read (a NUL or a lone
    surrogate somewhere), looked up by the reader's aliases; the last one wins, as there."""
    raw = None
    if isinstance(obj, dict):
        for name, value in obj.items():
            if isinstance(name, str) and name.lower() in _USER_ALIASES:
                raw = value
    return raw


def _claimed_user(fields: Any, obj: Any = None) -> str | None:
    """The user a rejected event names (for the user-key check): a plain id as
    its own, anything else that is there (a list, an object, text the reader
    refused) as its raw text, so it can only match the key's user if it is it."""
    raw = fields.get("user_id") if fields is not None else _user_field(obj)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return repr(raw)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip() or None


def _scoped_to_user(row: tuple) -> tuple:
    """A user key's own event_id is hashed with its user: ids are one global
    namespace, so a chosen id that collides with someone else's stored event
    would answer "duplicate" and reveal that event. Retries still map to the
    same id; ids derived from the fields already include the user."""
    event_id, user_id = row[0], row[1]
    if event_id == stable_event_id(*row[1:]):
        return row
    digest = hashlib.blake2b(f"{user_id}\x1f{event_id}".encode("utf-8", "surrogatepass"), digest_size=12)
    return (f"u-{digest.hexdigest()}", *row[1:])


def ingest(store: EventStore, key: ApiKey, objects: Sequence[Any], rules: ValueRules = DEFAULT_RULES) -> Outcome:
    good: list[tuple] = []
    good_index: list[int] = []
    bad: list[QuarantinedRow] = []
    results: list[dict[str, Any]] = [{} for _ in objects]
    users: set[str] = set()
    user_key = key.role == Role.USER.value
    for index, raw, fields, error in read_event_objects(objects):
        if fields is not None:
            try:
                row = event_fields(fields, rules)
            except RowError as exc:
                error = str(exc)
            else:
                if user_key:
                    row = _scoped_to_user(row)
                good.append(row)
                good_index.append(index)
                users.add(row[1])
                continue
        error = error or "unreadable row"
        claimed = _claimed_user(fields, objects[index])
        if claimed:
            users.add(claimed)
        kept = rules.store_raw_text  # the reason may echo a field ("non-numeric rating '…'"): masked like the row
        bad.append(QuarantinedRow("events", SOURCE, index, raw if kept else pii.mask(raw), error if kept else pii.mask(error),
                                  "jsonl"))
        results[index] = {"index": index, "status": "rejected", "event_id": None, "reason": error}
    if user_key and users - {key.user_id}:
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
