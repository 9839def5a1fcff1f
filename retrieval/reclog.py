"""The recommendation log: every list served, with each item's score parts and
the evidence behind them, so "why was X shown to U" has a true answer later."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import select

from tastebud.profiles.migrations import rec_items, rec_requests
from tastebud.profiles.store import EventStore
from tastebud.errors import NotFoundError
from tastebud.retrieval.why import render_why


@dataclass
class ScoredItem:
    item_id: str
    title: str
    score: float
    parts: dict[str, float]  # weighted contribution of each part; they sum to score
    evidence: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    categories: Sequence[str] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "rank": self.rank,
            "score": round(self.score, 6),
            "parts": {k: round(v, 6) for k, v in self.parts.items()},
            "evidence": self.evidence,
        }


@dataclass
class Recommendation:
    request_id: str
    user_id: str
    created_at: int
    profile_version: int | None
    params: dict[str, Any]
    items: list[ScoredItem]
    source: str = "cli"

    def as_dict(self, evidence: bool = False) -> dict[str, Any]:
        items = []
        for it in self.items:
            d = it.as_dict()
            if not evidence:
                d.pop("evidence")
            items.append(d)
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "profile_version": self.profile_version,
            "params": self.params,
            "items": items,
        }


class RecommendationLog:
    def __init__(self, store: EventStore):
        self.store = store

    def record(self, rec: Recommendation) -> None:
        with self.store.transaction() as conn:
            conn.execute(rec_requests.insert().values(
                request_id=rec.request_id, user_id=rec.user_id, created_at=rec.created_at,
                profile_version=rec.profile_version, source=rec.source,
                params=json.dumps(rec.params, sort_keys=True),
            ))
            if rec.items:
                conn.execute(rec_items.insert(), [
                    {"request_id": rec.request_id, "rank": it.rank, "user_id": rec.user_id, "item_id": it.item_id,
                     "created_at": rec.created_at, "score": it.score,
                     "parts": json.dumps(it.parts), "evidence": json.dumps(it.evidence, ensure_ascii=False)}
                    for it in rec.items
                ])

    @staticmethod
    def new_request_id() -> str:
        return str(uuid.uuid4())

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def entry(self, user_id: str, item_id: str, request_id: str | None = None) -> dict[str, Any]:
        """The logged record of item_id in user_id's latest (or the given) list."""
        query = select(rec_items, rec_requests.c.profile_version, rec_requests.c.params, rec_requests.c.source).join(
            rec_requests, rec_requests.c.request_id == rec_items.c.request_id
        ).where(rec_items.c.user_id == user_id, rec_items.c.item_id == item_id)
        if request_id:
            query = query.where(rec_items.c.request_id == request_id)
        query = query.order_by(rec_items.c.created_at.desc()).limit(1)
        with self.store.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            if row is None and request_id:
                owner = conn.execute(select(rec_requests.c.user_id).where(rec_requests.c.request_id == request_id)).scalar()
                if owner is None or owner != user_id:
                    raise NotFoundError(f"no recommendation request {request_id!r} for user {user_id!r}")
        if row is None:
            where = f" in request {request_id}" if request_id else ""
            raise NotFoundError(f"item {item_id!r} was never recommended to user {user_id!r}{where}")
        return {
            "request_id": row["request_id"],
            "user_id": row["user_id"],
            "item_id": row["item_id"],
            "rank": row["rank"],
            "created_at": row["created_at"],
            "profile_version": row["profile_version"],
            "params": json.loads(row["params"]),
            "source": row["source"],
            "score": row["score"],
            "parts": json.loads(row["parts"]),
            "evidence": json.loads(row["evidence"]),
        }

    def explain(self, user_id: str, item_id: str, request_id: str | None = None) -> dict[str, Any]:
        """`entry` with the item's title and the "why" sentences rendered from it: all
        a `why` needs, read from the log and the catalog alone (no recommender,
        no vectors, so a one-shot `tastebud why` imports neither numpy nor Chroma)."""
        entry = self.entry(user_id, item_id, request_id)
        try:
            title = self.store.get_item(item_id).title or item_id
        except NotFoundError:
            title = item_id
        entry["title"] = title
        entry["sentences"] = render_why(entry)
        return entry

    def request(self, request_id: str) -> Recommendation:
        with self.store.engine.connect() as conn:
            req = conn.execute(select(rec_requests).where(rec_requests.c.request_id == request_id)).mappings().first()
            if req is None:
                raise NotFoundError(f"no recommendation request {request_id!r}")
            rows = conn.execute(
                select(rec_items).where(rec_items.c.request_id == request_id).order_by(rec_items.c.rank)
            ).mappings().all()
        return Recommendation(
            request_id=request_id, user_id=req["user_id"], created_at=req["created_at"],
            profile_version=req["profile_version"], params=json.loads(req["params"]), source=req["source"],
            items=[ScoredItem(r["item_id"], "", r["score"], json.loads(r["parts"]), json.loads(r["evidence"]), r["rank"])
                   for r in rows],
        )

    def latest_request(self, user_id: str) -> Recommendation | None:
        with self.store.engine.connect() as conn:
            rid = conn.execute(
                select(rec_requests.c.request_id).where(rec_requests.c.user_id == user_id)
                .order_by(rec_requests.c.created_at.desc()).limit(1)
            ).scalar()
        return self.request(rid) if rid else None
