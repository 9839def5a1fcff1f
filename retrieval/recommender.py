"""The recommender: candidates from every source, a transparent blend of named
score parts, absolute negative feedback, optional MMR diversity.

Every part is scaled to [0, 1] per request (popularity globally) and the total
is sum(weight[part] * part); the weighted parts are what the log stores and
what "why" answers are rendered from, so an explanation is the score itself.

Parts:
  semantic_long / semantic_short: cosine of the item's vector with the user's
      long-/short-term profile vector (min-max scaled over the catalog).
  co_occurrence: sum over the user's recent positive items j of
      w_j * sim(j, item). sim is the item-item cosine over interaction values
      (the rating, or IMPLICIT_VALUE for a positive event without one) with
      shrinkage, and each candidate item keeps only its own top neighbours
      (a "target" neighbourhood: item-based CF). w_j = rating signal *
      position decay. The explanation cites exactly these w_j * sim(j, item).
  popularity: log(1 + positive interactions) / log(1 + max).
  tag_match: the item's categories/tags dotted with the long-term tag weights,
      minus disliked-tag weights.
  same_start: for short histories, what people went on to like after starting
      where this user starts (retrieval/same_start.py); weighted by blend_for.
  intent: cosine with a free-text request ("something funny"), when given.
  seed: "something like X": the seed items' own neighbours, the mean of their
      co-occurrence row (what people who liked X also liked) and their content
      cosine, each min-max scaled; weighted SEED_WEIGHT so the seed leads and
      the user's own parts order its neighbours. The seed items themselves are
      not recommended.
Negative feedback is absolute: disliked/skipped/low-rated items and their
near-duplicates (cosine >= NEAR_DUPLICATE) are removed; items similar to them
(cosine >= SIMILAR_TO_DISLIKED) get a `dislike_similarity` penalty. A stated
dislike of a category or tag (an item-less `dislike` event, "no more horror")
removes every item carrying it until a later `like` statement lifts it. The item
pairs above SIMILAR_TO_DISLIKED are computed once per item side (a sparse
matrix), so a request costs a row slice, not a catalog-sized matmul.

Measured on ml-latest-small under the protocol of docs/design.md#evaluation-protocol (co-occurrence part
alone, NDCG@10): binary cosine, source neighbourhood, half-life 40, top-100
positives by weight 0.094; target neighbourhood 0.108; rating-valued cosine
with shrink 10 0.111; the 200 most recent positives with half-life 200 0.115
(validation split of the training data: 0.117). EASE: 0.102.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tastebud.profiles.events import Event
from tastebud.profiles.interest import is_negative, rating_signal, stated_dislikes, user_mean_rating
from tastebud.retrieval.blas import single_threaded_blas
from tastebud.retrieval.item_side import (  # noqa: F401 - the item side's names, as callers import them from here
    IMPLICIT_VALUE, INTERACTION_COLUMNS, NEIGHBOURS, NON_INTERACTIONS, RECOMMENDER_PARAMS, SHRINK,
    SIMILAR_TO_DISLIKED, ItemSide, interaction_matrix, interaction_matrix_from_rows, interaction_value,
    item_similarity, near_pairs, tag_features,
)
from tastebud.retrieval.reclog import ScoredItem
from tastebud.retrieval.same_start import CITE_FROM, START_ITEMS, followed_count, start_part, user_start

PARTS = ("semantic_long", "semantic_short", "co_occurrence", "popularity", "tag_match")
CONSUMED_TYPES = frozenset({"rating", "purchase", "review", "like", "dislike", "skip", "tag"})
NEAR_DUPLICATE = 0.92
RECENT_POSITIVES = 200  # the user's most recent positive items feed co-occurrence
POSITION_HALF_LIFE = 200.0  # events: a mild lean towards what the user did last
INTENT_WEIGHT = 0.4
# Short histories lean on popularity (Recommender.blend_for): extra popularity weight
# COLD_POPULARITY * COLD_EVENTS / (item events + COLD_EVENTS). Chosen on the cold-user
# protocol run on the validation split of ml-latest-small's training part (200 users):
# NDCG@10 at 1 / 3 / 5 events 0.034 / 0.038 / 0.041 without it, 0.062 / 0.057 / 0.071
# with it (Pop 0.064 / 0.065 / 0.066); warm validation unchanged (0.1273 -> 0.1275).
# Command: bench/validation.py cold-users.
COLD_POPULARITY = 3.0
COLD_EVENTS = 5.0
COLD_KEY = "cold_popularity"  # the blend setting that overrides COLD_POPULARITY
# What people went on to like after starting where this user starts (retrieval/same_start.py),
# weighted SAME_START_WEIGHT * COLD_EVENTS / (history + COLD_EVENTS): it fades as the
# user's own parts take over. Chosen on the validation split of ml-latest-small's training
# part (`bench/validation.py cold-users --weights 3 --seeds 0,1,2` with `--same-start 0,1`,
# then `--same-start 0.5,2`; 600 user-levels): NDCG@10 at 1 / 3 / 5 events for weight 0 / 0.5 / 1 / 2: 0.0558 / 0.0579
# / 0.0600 / 0.0563, 0.0526 / 0.0579 / 0.0587 / 0.0603, 0.0611 / 0.0634 / 0.0648 / 0.0630
# (Pop 0.0560 / 0.0567 / 0.0582); warm validation 0.1275 / 0.1306 / 0.1322 / 0.1329.
SAME_START = "same_start"  # the part's name, and the blend setting that overrides SAME_START_WEIGHT
SAME_START_WEIGHT = 1.0
SEED_WEIGHT = 1.0
DISLIKE_PENALTY = 0.3
# Items nobody has interacted with yet cannot reach a top k through co-occurrence or
# popularity. With `new_items` n > 0 in the blend, up to n of the k places go to the
# never-interacted items closest to the user's profile vectors (the weighted semantic
# parts), each closer than every item the blend chose. Off by default: on the
# validation split of ml-latest-small one place cost warm NDCG@10 0.1275 -> 0.1226
# and put a held-out (cold) item in the top 10 for 0.7% of users (bench/validation.py
# new-items); a catalog that adds items daily may weigh that differently.
NEW_ITEMS = 0
NEW_ITEMS_KEY = "new_items"  # the blend setting that overrides NEW_ITEMS
SEMANTIC_PARTS = ("semantic_long", "semantic_short")


def positive_weights(events: Sequence[Event]) -> dict[str, tuple[float, Event]]:
    """The user's most recent positive items (up to RECENT_POSITIVES, oldest first)
    with their weight and the event that earned it.

    weight = rating signal (1 for a positive event without a rating) * 0.5 **
    (events since / POSITION_HALF_LIFE); an item keeps its strongest event. A
    negative event, or a rating at or below the user's mean, drops the item."""
    mean = user_mean_rating(events)
    out: dict[str, tuple[float, Event]] = {}
    ordered = [e for e in events if e.item_id]
    n = len(ordered)
    for pos, ev in enumerate(ordered):
        if is_negative(ev) or ev.type in NON_INTERACTIONS:
            out.pop(ev.item_id, None)
            continue
        signal = rating_signal(ev.value, mean) if ev.type == "rating" and ev.value is not None else 1.0
        if signal <= 1.0 and ev.type == "rating":
            out.pop(ev.item_id, None)  # at or below the user's mean: not a "liked" signal
            continue
        weight = signal * 0.5 ** ((n - 1 - pos) / POSITION_HALF_LIFE)
        old = out.pop(ev.item_id, None)  # re-inserted: dict order is recency
        out[ev.item_id] = old if old is not None and old[0] >= weight else (weight, ev)
    if len(out) > RECENT_POSITIVES:
        out = dict(list(out.items())[-RECENT_POSITIVES:])
    return out


def history_length(events: Sequence[Event]) -> int:
    """Item events (a stated like of a category is not history of items)."""
    return sum(1 for ev in events if ev.item_id)


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
    seeds: tuple[str, ...] = ()  # "something like X": recommend X's neighbours, ranked for this user
    opted_out: bool = False  # opted out of profiling: popularity only, without what they have seen


class Recommender:
    def __init__(self, side: ItemSide, blend: Mapping[str, float], cold_popularity: float | None = None,
                 cold_events: float = COLD_EVENTS):
        """cold_popularity: default the blend's own `cold_popularity` (fitted with its
        weights by `eval --fit`), else COLD_POPULARITY. The blend's `new_items` (default
        NEW_ITEMS) is how many places may go to never-interacted items."""
        self.side = side
        self.blend = {p: float(blend.get(p, 0.0)) for p in PARTS}
        if cold_popularity is None:
            cold_popularity = blend.get(COLD_KEY, COLD_POPULARITY)
        self.cold_popularity, self.cold_events = float(cold_popularity), float(cold_events)
        self.same_start_weight = float(blend.get(SAME_START, SAME_START_WEIGHT)) if side.same_start is not None else 0.0
        self.new_items = max(0, int(blend.get(NEW_ITEMS_KEY, NEW_ITEMS)))

    def new_item_picks(self, total: np.ndarray, parts: Mapping[str, np.ndarray], blend: Mapping[str, float],
                       order: Sequence[int], k: int) -> list[int]:
        """The never-interacted items that take the last places of `order` (the top k):
        the best by the weighted semantic parts, not blocked, scoring at least as high on
        them as every item in `order`; as many as `new_items` minus those already there."""
        side = self.side
        weights = [(p, blend.get(p, 0.0)) for p in SEMANTIC_PARTS if blend.get(p, 0.0) and p in parts]
        places = min(self.new_items, k) - int(np.count_nonzero(side.pop_counts[list(order)] == 0)) if order else 0
        if places <= 0 or not weights or side.vectors is None:
            return []
        semantic = sum(w * parts[p].astype(np.float64) for p, w in weights)
        new = (side.pop_counts == 0) & np.isfinite(total) & (semantic > 0) & (semantic >= semantic[list(order)].max())
        new[list(order)] = False
        cand = np.flatnonzero(new)
        return [int(c) for c in cand[np.argsort(-semantic[cand], kind="stable")[:places]]]

    def blend_for(self, history: int) -> dict[str, float]:
        """The blend for a user with `history` item events: popularity's weight grows by
        cold_popularity * fade and same_start's is same_start_weight * fade, fade =
        cold_events / (history + cold_events), so a short history leans on what most
        people like and on what people who started alike went on to like, and a long
        one on the user's own parts."""
        if not self.cold_popularity and not self.same_start_weight:
            return self.blend
        fade = self.cold_events / (history + self.cold_events)
        out = {**self.blend, "popularity": self.blend["popularity"] + self.cold_popularity * fade}
        if self.same_start_weight:
            out[SAME_START] = self.same_start_weight * fade
        return out

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
        start: list[int] = []
        if side.same_start is not None:
            start = user_start((e.item_id for e in ctx.events if interaction_value(e) is not None and e.ts >= 0),
                               side.index)  # as the item side learns starts: an unknown time (UNKNOWN_TS) starts nothing
            parts[SAME_START] = start_part(side.same_start, start)
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
        seed_parts = self.seed_parts(ctx.seeds)
        if seed_parts is not None:
            parts["seed"], parts["_seed_co"], parts["_seed_cos"] = seed_parts
        return parts, {"liked": liked, "cols": cols, "weights": weights, "tag_w": tag_w, "start": start}

    def seed_parts(self, seeds: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(seed part, raw co-occurrence, raw cosine) for the seed items; None without seeds in the catalog."""
        side, n = self.side, len(self.side.items)
        cols = [side.index[s] for s in seeds if s in side.index]
        if not cols:
            return None
        co = np.asarray(side.similarity[cols].sum(axis=0)).ravel().astype(np.float32) / len(cols)
        cos = (side.vectors @ side.vectors[cols].mean(axis=0)).astype(np.float32) if side.vectors is not None \
            else np.zeros(n, np.float32)
        halves = [_scale(x) for x, present in ((co, co.max() > 0), (cos, side.vectors is not None)) if present]
        if not halves:
            return None
        return (sum(halves) / len(halves)).astype(np.float32), co, cos

    def total(self, parts: Mapping[str, np.ndarray], blend: Mapping[str, float] | None = None) -> np.ndarray:
        blend = self.blend if blend is None else blend
        total = np.zeros(len(self.side.items), dtype=np.float64)
        for p in PARTS:  # float64, in the order _explain adds them, so the logged parts sum to the score
            if blend[p]:
                total += blend[p] * parts[p].astype(np.float64)
        if blend.get(SAME_START) and SAME_START in parts:
            total += blend[SAME_START] * parts[SAME_START].astype(np.float64)
        if "intent" in parts:
            total += INTENT_WEIGHT * parts["intent"].astype(np.float64)
        if "seed" in parts:
            total += SEED_WEIGHT * parts["seed"].astype(np.float64)
        if "dislike_similarity" in parts:
            total -= DISLIKE_PENALTY * parts["dislike_similarity"].astype(np.float64)
        return total

    # ---------------------------------------------------------------- filters
    def blocked(self, ctx: UserContext, category: str | None = None, exclude: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray | None]:
        """Mask of items that may not be shown, and similarity to disliked items."""
        side, n = self.side, len(self.side.items)
        mask = np.zeros(n, dtype=bool)
        consumed: list[int] = []
        disliked: list[int] = []
        index = side.index
        for ev in ctx.events:
            col = index.get(ev.item_id) if ev.item_id else None
            if col is None:
                continue
            if ev.type in CONSUMED_TYPES:
                consumed.append(col)
            if is_negative(ev):
                disliked.append(col)
        mask[consumed] = True
        near = None
        if disliked and side.near is not None:
            near = np.asarray(side.near[disliked].max(axis=0).todense(), dtype=np.float32).ravel()
            mask |= near >= NEAR_DUPLICATE  # near-duplicates of a disliked item, for good
            near = np.clip((near - SIMILAR_TO_DISLIKED) / (NEAR_DUPLICATE - SIMILAR_TO_DISLIKED), 0.0, 1.0)
        for tag in stated_dislikes(ctx.events):  # "no more horror": absolute, like an item dislike
            by_tag = side.tag_mask(tag)
            if by_tag is not None:
                mask |= by_tag
        if category:
            mask |= ~side.category_mask(category)
        for seed in ctx.seeds:
            if seed in index:
                mask[index[seed]] = True
        for value in exclude:
            v = value.strip()
            if not v:
                continue
            if v in index:
                mask[index[v]] = True
                continue
            by_tag = side.tag_mask(v)
            if by_tag is not None:
                mask |= by_tag
        return mask, near

    # ---------------------------------------------------------------- ranking
    def recommend(
        self, ctx: UserContext, k: int = 10, category: str | None = None, exclude: Iterable[str] = (),
        diversify: float | None = None,
    ) -> list[ScoredItem]:
        with single_threaded_blas():
            return self._recommend(ctx, k, category, exclude, diversify)

    def _recommend(self, ctx: UserContext, k: int, category: str | None, exclude: Iterable[str],
                   diversify: float | None) -> list[ScoredItem]:
        side = self.side
        if ctx.opted_out or (not ctx.events and not ctx.profile):  # cold start or opted out: popularity
            parts = {p: (side.popularity if p == "popularity" else np.zeros(len(side.items), np.float32)) for p in PARTS}
            why: dict[str, Any] = {"liked": {}, "cols": [], "weights": np.zeros(0, np.float32),
                                   ("opted_out" if ctx.opted_out else "cold_start"): True}
            seed_parts = self.seed_parts(ctx.seeds)
            if seed_parts is not None:
                parts["seed"], parts["_seed_co"], parts["_seed_cos"] = seed_parts
            mask, _ = self.blocked(ctx, category, exclude)
            total = np.asarray(side.popularity, dtype=np.float64)
            if "seed" in parts:
                total = total + SEED_WEIGHT * parts["seed"].astype(np.float64)
            blend = {p: (1.0 if p == "popularity" else 0.0) for p in PARTS}
        else:
            parts, why = self.parts(ctx)
            mask, near = self.blocked(ctx, category, exclude)
            if near is not None:
                parts["dislike_similarity"] = near
            # an explicit request (a seed, an intent) leads whatever the history: no backoff
            blend = self.blend if ctx.seeds or ctx.intent_vector is not None else self.blend_for(history_length(ctx.events))
            total = self.total(parts, blend)
        total = np.where(mask, -np.inf, total)
        order = self._select(total, k, diversify)
        if ctx.vectors and not ctx.seeds and not ctx.opted_out:  # a seed asks for its neighbours, not for news
            picks = self.new_item_picks(total, parts, blend, order, k)
            if picks:
                order = order[: max(0, min(len(order), k - len(picks)))] + picks
                why = {**why, "new_items": set(picks)}
        contrib = None
        if why["cols"] and order:  # each liked item's pull on each chosen item: weight * sim
            contrib = side.similarity[why["cols"]][:, order].toarray() * why["weights"][:, None]
        return [self._explain(col, rank, total[col], parts, why, ctx, blend, None if contrib is None else contrib[:, rank - 1])
                for rank, col in enumerate(order, start=1)]

    def _select(self, total: np.ndarray, k: int, diversify: float | None) -> list[int]:
        finite = np.flatnonzero(np.isfinite(total))
        if finite.size == 0:
            return []
        pool_size = min(finite.size, k if not diversify else max(5 * k, 50))
        if finite.size > 4 * pool_size:  # partial sort: only the pool needs ordering
            top = np.argpartition(-total[finite], pool_size - 1)[:pool_size]
            cand = finite[top]
            # stable among ties: order by score, then catalog position
            pool = cand[np.lexsort((cand, -total[cand]))]
        else:
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

    def _same_start_evidence(self, col: int, start: Sequence[int]) -> dict[str, Any]:
        """The user's first items that lead to this one: how many people started with
        each and how many of them went on to this item positively (the counts behind the
        shares; only from CITE_FROM people)."""
        side = self.side
        shares = side.same_start[list(start)][:, col].toarray().ravel()
        top = [j for j in np.argsort(-shares, kind="stable")[:3] if shares[j] > 0]
        items = []
        for j in top:
            start_id, started = side.items[start[j]], float(side.started[start[j]])
            counts = {"started": int(started), "went_on": followed_count(shares[j], started)} if started >= CITE_FROM else {}
            items.append({"item_id": start_id, "title": side.title(start_id), **counts, "share": round(float(shares[j]), 4)})
        return {"start_items": len(start), "first_items": START_ITEMS, "items": items}

    def _explain(self, col: int, rank: int, score: float, parts: Mapping[str, np.ndarray], why: Mapping[str, Any],
                 ctx: UserContext, blend: Mapping[str, float], pulls: np.ndarray | None) -> ScoredItem:
        side = self.side
        iid = side.items[col]
        weighted = {p: blend[p] * float(parts[p][col]) for p in PARTS if blend[p]}
        if blend.get(SAME_START) and SAME_START in parts:
            weighted[SAME_START] = blend[SAME_START] * float(parts[SAME_START][col])
        if "intent" in parts:
            weighted["intent"] = INTENT_WEIGHT * float(parts["intent"][col])
        if "seed" in parts:
            weighted["seed"] = SEED_WEIGHT * float(parts["seed"][col])
        if "dislike_similarity" in parts and parts["dislike_similarity"][col] > 0:
            weighted["dislike_similarity"] = -DISLIKE_PENALTY * float(parts["dislike_similarity"][col])
        evidence: dict[str, Any] = {}
        if pulls is not None:  # the past items whose similarity pulled this one in, strongest first
            liked_ids = [i for i in why["liked"] if i in side.index]
            top = [j for j in np.argsort(-pulls, kind="stable")[:3] if pulls[j] > 0]
            total_pull = float(pulls.sum())
            evidence["co_occurrence"] = [
                {"item_id": liked_ids[j], "title": side.title(liked_ids[j]), "event_id": why["liked"][liked_ids[j]][1].event_id,
                 "type": why["liked"][liked_ids[j]][1].type, "value": why["liked"][liked_ids[j]][1].value,
                 "contribution": round(float(pulls[j]), 4),
                 "share": round(float(pulls[j]) / total_pull, 4) if total_pull > 0 else 0.0}
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
        if weighted.get(SAME_START, 0) > 0:
            evidence[SAME_START] = self._same_start_evidence(col, why["start"])
        if col in why.get("new_items", ()):
            evidence["new_item"] = {"positive_interactions": 0, "places": self.new_items}
        if why.get("cold_start"):
            evidence["cold_start"] = True
        if why.get("opted_out"):
            evidence["opted_out"] = True
        for horizon in ("long", "short"):
            vec = ctx.vectors.get(horizon)
            if vec is not None and side.vectors is not None:
                evidence[f"semantic_{horizon}"] = {"cosine": round(float(side.vectors[col] @ vec), 4),
                                                   "profile_version": (ctx.profile or {}).get("version")}
        if "seed" in parts:
            seeds = [sd for sd in ctx.seeds if sd in side.index]
            evidence["seed"] = {"item_ids": seeds, "titles": [side.title(sd) for sd in seeds],
                                "co_occurrence": round(float(parts["_seed_co"][col]), 4),
                                "cosine": round(float(parts["_seed_cos"][col]), 4)}
        if "intent" in parts and ctx.intent_vector is not None:
            evidence["intent"] = {"text": ctx.intent, "cosine": round(float(side.vectors[col] @ ctx.intent_vector), 4)}
        return ScoredItem(iid, side.title(iid), float(score), weighted, evidence, rank,
                          tuple(item.categories) if item else ())
