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
import scipy.sparse as sp

from tastebud.profiles.events import Event, Item
from tastebud.profiles.interest import ITEM_TAG_FACTOR, is_negative, rating_signal, stated_dislikes, user_mean_rating
from tastebud.retrieval.blas import single_threaded_blas
from tastebud.retrieval.reclog import ScoredItem

PARTS = ("semantic_long", "semantic_short", "co_occurrence", "popularity", "tag_match")
CONSUMED_TYPES = frozenset({"rating", "purchase", "review", "like", "dislike", "skip", "tag"})
NON_INTERACTIONS = frozenset({"dislike", "skip", "search"})
NEAR_DUPLICATE = 0.92
SIMILAR_TO_DISLIKED = 0.75
RECENT_POSITIVES = 200  # the user's most recent positive items feed co-occurrence
POSITION_HALF_LIFE = 200.0  # events: a mild lean towards what the user did last
NEIGHBOURS = 100  # neighbours each candidate item keeps
SHRINK = 10.0  # added to the cosine denominator: damps similarities built on few co-raters
IMPLICIT_VALUE = 4.0  # interaction value of a positive event that carries no rating
# what a cached item side depends on besides the data (tastebud.retrieval.service keys its disk cache with it)
RECOMMENDER_PARAMS = f"n{NEIGHBOURS}-s{SHRINK}-i{IMPLICIT_VALUE}-d{SIMILAR_TO_DISLIKED}"
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
SEED_WEIGHT = 1.0
DISLIKE_PENALTY = 0.3


@dataclass
class ItemSide:
    """Everything item-side: ids, metadata, vectors, popularity, co-occurrence."""

    items: list[str]
    index: dict[str, int]
    catalog: Mapping[str, Item]
    popularity: np.ndarray
    pop_counts: np.ndarray
    similarity: sp.csr_matrix  # [j, i] = sim(j, i) when j is among i's top neighbours: row j = what j pulls in
    tag_vocab: dict[str, int]
    tag_matrix: sp.csr_matrix  # items x tags
    vectors: np.ndarray | None = None  # items x d, L2-normalised
    near: sp.csr_matrix | None = None  # items x items, cosine >= SIMILAR_TO_DISLIKED (diagonal left out)
    _categories: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _tags_lower: dict[str, list[int]] | None = field(default=None, repr=False)
    _tag_csc: sp.csc_matrix | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, items: Sequence[str], catalog: Mapping[str, Item], interactions: sp.csr_matrix,
        vectors: np.ndarray | None = None, neighbours: int = NEIGHBOURS, shrink: float = SHRINK,
    ) -> "ItemSide":
        """interactions: users x items, the value of each positive interaction (a
        rating, or IMPLICIT_VALUE), 0 where there is none; see `interaction_matrix`."""
        index = {iid: i for i, iid in enumerate(items)}
        interactions = sp.csr_matrix(interactions, dtype=np.float32)
        interactions.eliminate_zeros()
        counts = np.diff(interactions.tocsc().indptr).astype(np.float32)
        popularity = np.log1p(counts) / max(float(np.log1p(counts.max())) if counts.size else 0.0, 1e-9)
        tag_vocab, tag_matrix = tag_features(items, catalog)
        similarity = item_similarity(interactions, neighbours, shrink).T.tocsr()
        near = near_pairs(vectors) if vectors is not None else None
        return cls(list(items), index, catalog, popularity.astype(np.float32), counts,
                   similarity, tag_vocab, tag_matrix, vectors, near)

    def title(self, item_id: str) -> str:
        item = self.catalog.get(item_id)
        return item.title if item and item.title else item_id

    def category_mask(self, category: str) -> np.ndarray:
        """Items in a category (case-insensitive); built once for every category."""
        if self._categories is None:
            cols: dict[str, list[int]] = {}
            for i, iid in enumerate(self.items):
                item = self.catalog.get(iid)
                for c in (item.categories if item else ()):
                    cols.setdefault(c.strip().lower(), []).append(i)
            masks = {}
            for c, idx in cols.items():
                m = np.zeros(len(self.items), dtype=bool)
                m[idx] = True
                masks[c] = m
            self._categories = masks
        got = self._categories.get(category.strip().lower())
        return got if got is not None else np.zeros(len(self.items), dtype=bool)

    def tag_mask(self, tag: str) -> np.ndarray | None:
        """Items carrying a category or tag (case-insensitive); None when no item has it."""
        if self._tags_lower is None:
            lower: dict[str, list[int]] = {}
            for t, col in self.tag_vocab.items():
                lower.setdefault(t.strip().lower(), []).append(col)
            self._tags_lower = lower
            self._tag_csc = self.tag_matrix.tocsc()
        cols = self._tags_lower.get(tag.strip().lower())
        if not cols:
            return None
        mask = np.zeros(len(self.items), dtype=bool)
        for col in cols:
            csc = self._tag_csc
            mask[csc.indices[csc.indptr[col]:csc.indptr[col + 1]]] = True
        return mask


def tag_features(items: Sequence[str], catalog: Mapping[str, Item]) -> tuple[dict[str, int], sp.csr_matrix]:
    """items x tags: 1 for a category, ITEM_TAG_FACTOR for a catalog tag (capped at 1)."""
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
    return vocab, tag_matrix


def interaction_value(event: Event) -> float | None:
    """An event's value in the co-occurrence matrix; None = not a positive interaction."""
    if event.item_id is None or event.type in NON_INTERACTIONS:
        return None
    if event.type == "rating":
        return float(event.value) if event.value is not None and event.value > 0 else None
    return IMPLICIT_VALUE


def interaction_matrix(events: Iterable[Event], index: Mapping[str, int]) -> sp.csr_matrix:
    """users x items: the latest rating of each (user, item), else IMPLICIT_VALUE when
    the user has any other positive event on it; dislikes, skips, searches count not."""
    return interaction_matrix_from_rows([[(e.user_id, e.item_id, e.type, e.value) for e in events]], index)


INTERACTION_COLUMNS = ("user_id", "item_id", "type", "value")  # what interaction_matrix_from_rows reads, in order
_COMPACT_AT = 1 << 18  # buffered interactions that trigger folding repeats of a (user, item) pair


def interaction_matrix_from_rows(chunks: Iterable[Sequence[tuple]], index: Mapping[str, int]) -> sp.csr_matrix:
    """interaction_matrix over chunks of (user_id, item_id, type, value) tuples in event
    order (EventStore.event_field_chunks): the item side is built from a streaming
    cursor, holding numpy arrays of (user, item) pairs, not the events. Pairs are
    folded whenever 262,144 are buffered, so memory follows the distinct pairs."""
    users: dict[str, int] = {}
    n_items = max(1, len(index))
    keys: list[np.ndarray] = []  # user * n_items + item
    values: list[np.ndarray] = []
    rated: list[np.ndarray] = []
    buffered = 0
    implicit = IMPLICIT_VALUE
    for chunk in chunks:
        k_out: list[int] = []
        v_out: list[float] = []
        r_out: list[bool] = []
        for user, item, type_, value in chunk:
            if item is None or type_ in NON_INTERACTIONS:
                continue
            col = index.get(item)
            if col is None:
                continue
            if type_ == "rating":
                if value.__class__ is not float:  # as the store reads it: a value that is not a number is none
                    value = float(value) if isinstance(value, int) and not isinstance(value, bool) else None
                if value is None or not value > 0:
                    continue
                is_rating = True
            else:
                value, is_rating = implicit, False
            row = users.get(user)
            if row is None:
                row = users[user] = len(users)
            k_out.append(row * n_items + col)
            v_out.append(value)
            r_out.append(is_rating)
        if k_out:
            keys.append(np.asarray(k_out, dtype=np.int64))
            values.append(np.asarray(v_out, dtype=np.float32))
            rated.append(np.asarray(r_out, dtype=bool))
            buffered += len(k_out)
        if buffered >= _COMPACT_AT:
            folded = _fold_pairs(keys, values, rated)
            keys, values, rated = [folded[0]], [folded[1]], [folded[2]]
            buffered = folded[0].size
    n_users = max(1, len(users))
    if not keys:
        return sp.csr_matrix((n_users, len(index)), dtype=np.float32)
    k, v, _ = _fold_pairs(keys, values, rated)
    return sp.csr_matrix((v, (k // n_items, k % n_items)), shape=(n_users, len(index)), dtype=np.float32)


def _fold_pairs(keys: list[np.ndarray], values: list[np.ndarray], rated: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One entry per pair: its latest rating if it has one, else its latest implicit
    value (arrays in event order; sorting by pair, then rated, then position puts the
    winner last in each pair's run)."""
    k, v, r = np.concatenate(keys), np.concatenate(values), np.concatenate(rated)
    order = np.lexsort((np.arange(k.size), r, k))
    k, v, r = k[order], v[order], r[order]
    last = np.ones(k.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return k[last], v[last], r[last]


BLOCK_CELLS = 1 << 23  # dense cells per block of an item-item pass (32 MiB of float32): memory bounded in the catalog size


def _block_rows(n: int, most: int) -> int:
    return max(1, min(most, BLOCK_CELLS // max(n, 1)))


def item_similarity(x: sp.csr_matrix, neighbours: int = NEIGHBOURS, shrink: float = SHRINK, chunk: int = 1024) -> sp.csr_matrix:
    """Item-item cosine with shrinkage over a users x items matrix: row i holds
    i's top `neighbours` most similar items (self excluded). Rows are scored in
    dense blocks of at most `chunk` rows and BLOCK_CELLS cells."""
    xa = sp.csc_matrix(x, dtype=np.float32)
    n = xa.shape[1]
    chunk = _block_rows(n, chunk)
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


def near_pairs(vectors: np.ndarray, threshold: float = SIMILAR_TO_DISLIKED, chunk: int = 2048) -> sp.csr_matrix:
    """items x items cosine of every pair at or above threshold (diagonal left out)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    chunk = _block_rows(n, chunk)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = vectors[start:stop] @ vectors.T
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        r, c = np.nonzero(block >= threshold)
        rows.append(r + start)
        cols.append(c)
        vals.append(block[r, c])
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32)


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
        weights by `eval --fit`), else COLD_POPULARITY."""
        self.side = side
        self.blend = {p: float(blend.get(p, 0.0)) for p in PARTS}
        if cold_popularity is None:
            cold_popularity = blend.get(COLD_KEY, COLD_POPULARITY)
        self.cold_popularity, self.cold_events = float(cold_popularity), float(cold_events)

    def blend_for(self, history: int) -> dict[str, float]:
        """The blend for a user with `history` item events: popularity's weight grows by
        cold_popularity * cold_events / (history + cold_events), so a short history leans
        on what most people like and a long one on the user's own parts."""
        if not self.cold_popularity:
            return self.blend
        extra = self.cold_popularity * self.cold_events / (history + self.cold_events)
        return {**self.blend, "popularity": self.blend["popularity"] + extra}

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
        seed_parts = self.seed_parts(ctx.seeds)
        if seed_parts is not None:
            parts["seed"], parts["_seed_co"], parts["_seed_cos"] = seed_parts
        return parts, {"liked": liked, "cols": cols, "weights": weights, "tag_w": tag_w}

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

    def _explain(self, col: int, rank: int, score: float, parts: Mapping[str, np.ndarray], why: Mapping[str, Any],
                 ctx: UserContext, blend: Mapping[str, float], pulls: np.ndarray | None) -> ScoredItem:
        side = self.side
        iid = side.items[col]
        weighted = {p: blend[p] * float(parts[p][col]) for p in PARTS if blend[p]}
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
