"""The recommender: candidates from every source, a transparent blend of named
score parts, absolute negative feedback, optional MMR diversity.

Every part is scaled to [0, 1] per request (popularity globally) and the total
is sum(weight[part] * part); the weighted parts are what the log stores and
what "why" answers are rendered from, so an explanation is the score itself.

Parts:
  semantic_long / semantic_short: cosine of the item's vector with the user's
      long-/short-term profile vector (min-max scaled over the catalog).
  co_occurrence: sum over the user's recent positive items j of
      w_j * sim(j, item), sim = item-item cosine over positive interactions
      (top neighbours per item); w_j = rating signal * position decay.
  popularity: log(1 + positive interactions) / log(1 + max).
  tag_match: the item's categories/tags dotted with the long-term tag weights,
      minus disliked-tag weights.
  intent: cosine with a free-text request ("something funny"), when given.
Negative feedback is absolute: disliked/skipped/low-rated items and their
near-duplicates (cosine >= NEAR_DUPLICATE) are removed; items similar to them
get a `dislike_similarity` penalty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from profiles.events import Event, Item
from profiles.interest import ITEM_TAG_FACTOR, is_negative, rating_signal, user_mean_rating
from retrieval.reclog import ScoredItem

if TYPE_CHECKING:
    from retrieval.evaluation import TrainData

PARTS = ("semantic_long", "semantic_short", "co_occurrence", "popularity", "tag_match")
CONSUMED_TYPES = frozenset({"rating", "purchase", "review", "like", "dislike", "skip", "tag"})
NEAR_DUPLICATE = 0.92
SIMILAR_TO_DISLIKED = 0.75
RECENT_POSITIVES = 100
POSITION_HALF_LIFE = 40.0  # events: co-occurrence leans on what the user did last
INTENT_WEIGHT = 0.4
DISLIKE_PENALTY = 0.3


def profile_text(profile: Mapping[str, Any], horizon: str) -> str:
    """What a profile vector encodes: its tags, strongest first, and liked titles."""
    h = profile[horizon]
    tags = ", ".join(t["tag"] for t in h["tags"][:10])
    liked = "; ".join(i["title"] for i in h["top_items"][:5])
    return f"Interests: {tags}. Liked: {liked}." if liked else f"Interests: {tags}."


@dataclass
class ItemSide:
    """Everything item-side: ids, metadata, vectors, popularity, co-occurrence."""

    items: list[str]
    index: dict[str, int]
    catalog: Mapping[str, Item]
    popularity: np.ndarray
    pop_counts: np.ndarray
    similarity: sp.csr_matrix  # row j: j's neighbours
    tag_vocab: dict[str, int]
    tag_matrix: sp.csr_matrix  # items x tags
    vectors: np.ndarray | None = None  # items x d, L2-normalised

    @classmethod
    def build(
        cls, items: Sequence[str], catalog: Mapping[str, Item], positives: sp.csr_matrix,
        vectors: np.ndarray | None = None, neighbours: int = 100, shrink: float = 10.0,
    ) -> "ItemSide":
        """positives: users x items binary matrix of positive interactions."""
        index = {iid: i for i, iid in enumerate(items)}
        counts = np.asarray(positives.sum(axis=0)).ravel().astype(np.float32)
        popularity = np.log1p(counts) / max(np.log1p(counts.max()), 1e-9)
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for i, iid in enumerate(items):
            item = catalog.get(iid)
            if item is None:
                continue
            for tag, factor in [(c, 1.0) for c in item.categories] + [(t, ITEM_TAG_FACTOR) for t in item.tags]:
                rows.append(i)
                cols.append(vocab.setdefault(tag, len(vocab)))
                vals.append(factor)
        tag_matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(items), max(1, len(vocab))), dtype=np.float32)
        tag_matrix.sum_duplicates()
        tag_matrix.data = np.minimum(tag_matrix.data, 1.0)
        return cls(list(items), index, catalog, popularity.astype(np.float32), counts,
                   item_similarity(positives, neighbours, shrink), vocab, tag_matrix, vectors)

    def title(self, item_id: str) -> str:
        item = self.catalog.get(item_id)
        return item.title if item and item.title else item_id


def item_similarity(x: sp.csr_matrix, neighbours: int = 100, shrink: float = 10.0, chunk: int = 1024) -> sp.csr_matrix:
    """Item-item cosine with shrinkage over a users x items matrix, top neighbours per row."""
    xa = sp.csc_matrix(x, dtype=np.float32)
    n = xa.shape[1]
    norms = np.sqrt(np.asarray(xa.multiply(xa).sum(axis=0)).ravel())
    xt = xa.T.tocsr()
    k = min(neighbours, max(n - 1, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = (xt[start:stop] @ xa).toarray()
        block /= np.outer(norms[start:stop], norms) + shrink + 1e-9
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        keep = np.argpartition(-block, k - 1, axis=1)[:, :k]
        kept = np.take_along_axis(block, keep, axis=1)
        mask = kept > 0
        rows.append(np.repeat(np.arange(start, stop), k)[mask.ravel()])
        cols.append(keep.ravel()[mask.ravel()])
        vals.append(kept.ravel()[mask.ravel()])
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32)


def positive_weights(events: Sequence[Event]) -> dict[str, tuple[float, Event]]:
    """The user's recent positive items with their weight, latest event per item."""
    mean = user_mean_rating(events)
    out: dict[str, tuple[float, Event]] = {}
    ordered = [e for e in events if e.item_id]
    n = len(ordered)
    for pos, ev in enumerate(ordered):
        if is_negative(ev) or ev.type == "search":
            out.pop(ev.item_id, None)
            continue
        signal = rating_signal(ev.value, mean) if ev.type == "rating" and ev.value is not None else 1.0
        if signal <= 1.0 and ev.type == "rating":
            out.pop(ev.item_id, None)  # at or below the user's mean: not a "liked" signal
            continue
        out[ev.item_id] = (signal * 0.5 ** ((n - 1 - pos) / POSITION_HALF_LIFE), ev)
    recent = sorted(out.items(), key=lambda kv: -kv[1][0])[:RECENT_POSITIVES]
    return dict(recent)


def _scale(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


@dataclass
class UserContext:
    user_id: str
    events: Sequence[Event]
    profile: Mapping[str, Any] | None
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)  # horizon -> vector
    intent: str | None = None
    intent_vector: np.ndarray | None = None


class Recommender:
    def __init__(self, side: ItemSide, blend: Mapping[str, float]):
        self.side = side
        self.blend = {p: float(blend.get(p, 0.0)) for p in PARTS}

    # ---------------------------------------------------------------- scoring
    def parts(self, ctx: UserContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Unweighted parts over the whole catalog, plus what explains them."""
        side, n = self.side, len(self.side.items)
        parts: dict[str, np.ndarray] = {}
        for horizon, name in (("long", "semantic_long"), ("short", "semantic_short")):
            vec = ctx.vectors.get(horizon)
            parts[name] = _scale(side.vectors @ vec) if side.vectors is not None and vec is not None else np.zeros(n, np.float32)
        liked = positive_weights(ctx.events)
        cols = [side.index[i] for i in liked if i in side.index]
        weights = np.array([liked[i][0] for i in liked if i in side.index], dtype=np.float32)
        co = np.asarray(side.similarity[cols].T @ weights).ravel() if cols else np.zeros(n, np.float32)
        parts["co_occurrence"] = co / co.max() if co.size and co.max() > 0 else np.zeros(n, np.float32)
        parts["popularity"] = side.popularity
        tag_w = np.zeros(side.tag_matrix.shape[1], dtype=np.float32)
        if ctx.profile:
            for t in ctx.profile["long_term"]["tags"]:
                if t["tag"] in side.tag_vocab:
                    tag_w[side.tag_vocab[t["tag"]]] += t["weight"]
            for t in ctx.profile["dislikes"]["tags"]:
                if t["tag"] in side.tag_vocab:
                    tag_w[side.tag_vocab[t["tag"]]] += t["weight"]  # negative weights
        tm = side.tag_matrix @ tag_w
        top = float(np.abs(tm).max()) if tm.size else 0.0
        parts["tag_match"] = tm / top if top > 0 else np.zeros(n, np.float32)
        if ctx.intent_vector is not None and side.vectors is not None:
            parts["intent"] = _scale(side.vectors @ ctx.intent_vector)
        return parts, {"liked": liked, "cols": cols, "weights": weights, "tag_w": tag_w}

    def total(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        total = sum(self.blend[p] * parts[p] for p in PARTS)
        if "intent" in parts:
            total = total + INTENT_WEIGHT * parts["intent"]
        if "dislike_similarity" in parts:
            total = total - DISLIKE_PENALTY * parts["dislike_similarity"]
        return np.asarray(total, dtype=np.float64)

    # ---------------------------------------------------------------- filters
    def blocked(self, ctx: UserContext, category: str | None = None, exclude: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray | None]:
        """Mask of items that may not be shown, and similarity to disliked items."""
        side, n = self.side, len(self.side.items)
        mask = np.zeros(n, dtype=bool)
        disliked: list[int] = []
        for ev in ctx.events:
            if ev.item_id and ev.item_id in side.index:
                col = side.index[ev.item_id]
                if ev.type in CONSUMED_TYPES:
                    mask[col] = True
                if is_negative(ev):
                    disliked.append(col)
        near = None
        if disliked and side.vectors is not None:
            near = (side.vectors @ side.vectors[disliked].T).max(axis=1)
            mask |= near >= NEAR_DUPLICATE  # near-duplicates of a disliked item, for good
            near = np.clip((near - SIMILAR_TO_DISLIKED) / (NEAR_DUPLICATE - SIMILAR_TO_DISLIKED), 0.0, 1.0)
        if category:
            wanted = category.strip().lower()
            allowed = np.array([
                any(c.lower() == wanted for c in (side.catalog[i].categories if i in side.catalog else ()))
                for i in side.items
            ])
            mask |= ~allowed
        for value in exclude:
            v = value.strip().lower()
            if not v:
                continue
            if value in side.index:
                mask[side.index[value]] = True
            elif value.strip() in side.tag_vocab or any(t.lower() == v for t in side.tag_vocab):
                col = next(c for t, c in side.tag_vocab.items() if t.lower() == v)
                mask |= np.asarray(side.tag_matrix[:, col].todense()).ravel() > 0
        return mask, near

    # ---------------------------------------------------------------- ranking
    def recommend(
        self, ctx: UserContext, k: int = 10, category: str | None = None, exclude: Iterable[str] = (),
        diversify: float | None = None,
    ) -> list[ScoredItem]:
        side = self.side
        parts, why = self.parts(ctx)
        mask, near = self.blocked(ctx, category, exclude)
        if near is not None:
            parts["dislike_similarity"] = near
        if not ctx.events and not ctx.profile:  # cold start: popularity (in the stated category)
            parts = {p: (side.popularity if p == "popularity" else np.zeros(len(side.items), np.float32)) for p in PARTS}
            total = np.asarray(side.popularity, dtype=np.float64)
        else:
            total = self.total(parts)
        total = np.where(mask, -np.inf, total)
        order = self._select(total, k, diversify)
        return [self._explain(col, rank, total[col], parts, why, ctx) for rank, col in enumerate(order, start=1)]

    def _select(self, total: np.ndarray, k: int, diversify: float | None) -> list[int]:
        finite = np.flatnonzero(np.isfinite(total))
        if finite.size == 0:
            return []
        pool_size = min(finite.size, k if not diversify else max(5 * k, 50))
        pool = finite[np.argsort(-total[finite], kind="stable")[:pool_size]]
        if not diversify or self.side.vectors is None:
            return [int(c) for c in pool[:k]]
        lam = float(diversify)
        chosen: list[int] = []
        candidates = list(pool)
        vecs = self.side.vectors
        while candidates and len(chosen) < k:  # maximal marginal relevance
            if chosen:
                redundancy = (vecs[candidates] @ vecs[chosen].T).max(axis=1)
            else:
                redundancy = np.zeros(len(candidates))
            mmr = lam * total[candidates] - (1 - lam) * redundancy
            best = int(np.argmax(mmr))
            chosen.append(int(candidates.pop(best)))
        return chosen

    def _explain(self, col: int, rank: int, score: float, parts: Mapping[str, np.ndarray], why: Mapping[str, Any], ctx: UserContext) -> ScoredItem:
        side = self.side
        iid = side.items[col]
        weighted = {p: float(self.blend[p] * parts[p][col]) for p in PARTS if self.blend[p]}
        if "intent" in parts:
            weighted["intent"] = float(INTENT_WEIGHT * parts["intent"][col])
        if "dislike_similarity" in parts and parts["dislike_similarity"][col] > 0:
            weighted["dislike_similarity"] = -float(DISLIKE_PENALTY * parts["dislike_similarity"][col])
        evidence: dict[str, Any] = {}
        if why["cols"]:
            sims = np.asarray(side.similarity[why["cols"], col].todense()).ravel() * why["weights"]
            liked_ids = [i for i in why["liked"] if i in side.index]
            top = [j for j in np.argsort(-sims)[:3] if sims[j] > 0]
            evidence["co_occurrence"] = [
                {"item_id": liked_ids[j], "title": side.title(liked_ids[j]), "event_id": why["liked"][liked_ids[j]][1].event_id,
                 "type": why["liked"][liked_ids[j]][1].type, "value": why["liked"][liked_ids[j]][1].value,
                 "contribution": round(float(sims[j]), 4)}
                for j in top
            ]
        item = side.catalog.get(iid)
        if item is not None and ctx.profile:
            feats = set(item.categories) | set(item.tags)
            evidence["tag_match"] = [
                {"tag": t["tag"], "weight": t["weight"], "evidence_event_ids": t["evidence_event_ids"][:3]}
                for t in ctx.profile["long_term"]["tags"] + ctx.profile["dislikes"]["tags"] if t["tag"] in feats
            ][:5]
        evidence["popularity"] = {"positive_interactions": int(side.pop_counts[col])}
        for horizon in ("long", "short"):
            vec = ctx.vectors.get(horizon)
            if vec is not None and side.vectors is not None:
                evidence[f"semantic_{horizon}"] = {"cosine": round(float(side.vectors[col] @ vec), 4),
                                                   "profile_version": (ctx.profile or {}).get("version")}
        if "intent" in parts and ctx.intent_vector is not None:
            evidence["intent"] = {"text": ctx.intent, "cosine": round(float(side.vectors[col] @ ctx.intent_vector), 4)}
        return ScoredItem(iid, side.title(iid), float(score), weighted, evidence, rank,
                          tuple(item.categories) if item else ())
