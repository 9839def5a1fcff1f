"""Recommendations as a service: profile + vectors + item side + log, and the
deterministic "why" rendering support staff and the agent rely on."""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from profiles.events import Event
from profiles.store import EventStore
from profiles.versions import ProfileRepository
from retrieval.reclog import Recommendation, RecommendationLog
from retrieval.recommender import ItemSide, Recommender, UserContext, profile_text
from tastebud.errors import InputError, NotFoundError


def build_item_side(store: EventStore, vectors: Any | None) -> ItemSide:
    """Item-side state from the whole event store and the item vectors in Chroma."""
    catalog = store.items_by_id()
    items = sorted(catalog)
    index = {iid: i for i, iid in enumerate(items)}
    users: dict[str, int] = {}
    rows, cols = [], []
    for ev in store.all_events():
        if ev.item_id in index and ev.type not in ("dislike", "skip", "search"):
            rows.append(users.setdefault(ev.user_id, len(users)))
            cols.append(index[ev.item_id])
    positives = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(max(1, len(users)), len(items)))
    positives.data[:] = 1.0
    positives.sum_duplicates()
    positives.data = np.minimum(positives.data, 1.0)
    matrix = None
    if vectors is not None and items:
        ids, vecs = vectors.items.get_vectors(items)
        if len(ids) == len(items):
            order = {iid: i for i, iid in enumerate(ids)}
            matrix = vecs[[order[i] for i in items]].astype(np.float32)
    return ItemSide.build(items, catalog, positives, matrix)


def sync_item_vectors(store: EventStore, vectors: Any) -> Any:
    return vectors.sync_items(store.items_by_id().values())


def sync_profile_vectors(vectors: Any, profiles: Sequence[Mapping[str, Any]]) -> Any:
    records = []
    for p in profiles:
        for horizon, name in (("long_term", "long"), ("short_term", "short")):
            records.append((p["user_id"], name, profile_text(p, horizon), int(p.get("version") or 0)))
    return vectors.sync_profiles(records)


class RecommendationService:
    def __init__(self, store: EventStore, vectors: Any | None, blend: Mapping[str, float], embedder: Any = None):
        self.store = store
        self.vectors = vectors
        self.blend = dict(blend)
        self.embedder = embedder or (vectors.embedder if vectors is not None else None)
        self.repo = ProfileRepository(store)
        self.log = RecommendationLog(store)
        self._side: ItemSide | None = None
        self._lock = threading.Lock()

    @property
    def side(self) -> ItemSide:
        with self._lock:
            if self._side is None:
                self._side = build_item_side(self.store, self.vectors)
            return self._side

    def invalidate(self) -> None:
        with self._lock:
            self._side = None

    def context(self, user_id: str, intent: str | None = None) -> UserContext:
        events = self.store.events_for_user(user_id)
        profile = self.repo.latest(user_id)
        if events and profile is None:
            raise NotFoundError(f"user {user_id!r} has no profile yet", hint=f"run: tastebud refresh --user {user_id}")
        vecs: dict[str, np.ndarray] = {}
        if profile is not None and self.vectors is not None:
            vecs = self.vectors.profile_vectors(user_id)
            if not vecs and self.embedder is not None:  # not synced yet: encode on the fly
                encoded = self.embedder.encode([profile_text(profile, "long_term"), profile_text(profile, "short_term")])
                vecs = {"long": encoded[0], "short": encoded[1]}
        intent_vec = self.embedder.encode([intent])[0] if intent and self.embedder is not None else None
        return UserContext(user_id, events, profile, vecs, intent, intent_vec)

    def recommend(
        self, user_id: str, k: int = 10, category: str | None = None, exclude: Sequence[str] = (),
        intent: str | None = None, diversify: float | None = None, source: str = "cli",
    ) -> Recommendation:
        if k < 1 or k > 100:
            raise InputError("k must be between 1 and 100")
        ctx = self.context(user_id, intent)
        items = Recommender(self.side, self.blend).recommend(ctx, k, category, exclude, diversify)
        rec = Recommendation(
            request_id=RecommendationLog.new_request_id(), user_id=user_id, created_at=RecommendationLog.now_ms(),
            profile_version=(ctx.profile or {}).get("version"),
            params={"k": k, "category": category, "exclude": list(exclude), "intent": intent, "diversify": diversify},
            items=items, source=source,
        )
        self.log.record(rec)
        return rec

    def why(self, user_id: str, item_id: str, request_id: str | None = None) -> dict[str, Any]:
        entry = self.log.entry(user_id, item_id, request_id)
        try:
            title = self.store.get_item(item_id).title or item_id
        except NotFoundError:
            title = item_id
        entry["title"] = title
        entry["sentences"] = render_why(entry)
        return entry


def _stars(value: Any) -> str:
    v = float(value)
    return f"{int(v) if v.is_integer() else v}/5"


def render_why(entry: Mapping[str, Any]) -> list[str]:
    """Short deterministic sentences from the logged parts and evidence, biggest part first."""
    parts, evidence = entry["parts"], entry["evidence"]
    sentences: list[tuple[float, str]] = []
    co = evidence.get("co_occurrence") or []
    if parts.get("co_occurrence", 0) > 0 and co:
        liked = [f"{e['title']} {_stars(e['value'])}" if e.get("type") == "rating" and e.get("value") is not None
                 else f"{e['title']} ({e['type']})" for e in co]
        verb = "rated" if all(e.get("type") == "rating" for e in co) else "liked"
        sentences.append((parts["co_occurrence"], f"You {verb} {_and(liked)}; people who liked those also liked this."))
    tags = [t for t in evidence.get("tag_match") or [] if t["weight"] > 0]
    if parts.get("tag_match", 0) > 0 and tags:
        sentences.append((parts["tag_match"], "Matches your interest in " + _and([f"{t['tag']} (weight {t['weight']:.2f})" for t in tags[:3]]) + "."))
    for horizon, label in (("semantic_long", "long-term"), ("semantic_short", "recent")):
        if parts.get(horizon, 0) > 0 and horizon in evidence:
            sentences.append((parts[horizon], f"Close to your {label} taste profile (similarity {evidence[horizon]['cosine']:.2f})."))
    if parts.get("intent", 0) > 0 and "intent" in evidence:
        sentences.append((parts["intent"], f"Fits your request \"{evidence['intent']['text']}\" (similarity {evidence['intent']['cosine']:.2f})."))
    if parts.get("popularity", 0) > 0:
        n = (evidence.get("popularity") or {}).get("positive_interactions", 0)
        sentences.append((parts["popularity"], f"Popular: {n:,} people interacted with it positively."))
    disliked = [t for t in evidence.get("tag_match") or [] if t["weight"] < 0]
    if disliked:
        sentences.append((-1.0, "Held back a little because it has " + _and([t["tag"] for t in disliked[:2]]) + ", which you tend to avoid."))
    if parts.get("dislike_similarity", 0) < 0:
        sentences.append((-1.0, "Held back a little because it resembles something you disliked."))
    sentences.sort(key=lambda s: -s[0])
    return [s for _, s in sentences] or ["It scored on popularity alone (no personal signal yet)."]


def _and(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""
