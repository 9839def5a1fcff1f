"""The item side: everything a recommendation needs about items, built from the
whole event store and the catalog, shared by every user's request and cached on
disk (tastebud.retrieval.service): ids, popularity, item-item co-occurrence,
tags, vectors and the near-duplicate pairs negative feedback uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tastebud.profiles.events import Event, Item
from tastebud.profiles.interest import ITEM_TAG_FACTOR
from tastebud.profiles.rows import usable_ts
from tastebud.retrieval.same_start import START_ITEMS, START_KEEP, START_SHRINK, StartTracker, same_start_matrix

NON_INTERACTIONS = frozenset({"dislike", "skip", "search"})
SIMILAR_TO_DISLIKED = 0.75
NEIGHBOURS = 100  # neighbours each candidate item keeps
SHRINK = 10.0  # added to the cosine denominator: damps similarities built on few co-raters
IMPLICIT_VALUE = 4.0  # interaction value of a positive event that carries no rating
# what a cached item side depends on besides the data (tastebud.retrieval.service keys its disk cache with it)
RECOMMENDER_PARAMS = (f"n{NEIGHBOURS}-s{SHRINK}-i{IMPLICIT_VALUE}-d{SIMILAR_TO_DISLIKED}"
                      f"-st{START_ITEMS}-{START_SHRINK}-{START_KEEP}")


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
    # [i, j] = share of the users who started with i who went on to j positively (retrieval/same_start.py)
    same_start: sp.csr_matrix | None = None
    started: np.ndarray | None = None  # users whose first items included each item
    # what a rebuild may carry over (retrieval.service._build_item_side); not saved with the side
    catalog_digest: str | None = None
    vectors_found: int | None = None
    _categories: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _tags_lower: dict[str, list[int]] | None = field(default=None, repr=False)
    _tag_csc: sp.csc_matrix | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, items: Sequence[str], catalog: Mapping[str, Item], interactions: sp.csr_matrix,
        vectors: np.ndarray | None = None, neighbours: int = NEIGHBOURS, shrink: float = SHRINK,
        previous: "ItemSide | None" = None, starts: sp.csr_matrix | None = None,
    ) -> "ItemSide":
        """interactions: users x items, the value of each positive interaction (a
        rating, or IMPLICIT_VALUE), 0 where there is none; see `interaction_matrix`.
        starts: users x items, each user's first items (StartTracker.matrix, the same
        rows), for the same_start part; without it the part is 0.
        previous: the side this one replaces; its near-duplicate pairs are kept when
        the items and their vectors are the same (a quarter of a rebuild for new events)."""
        index = {iid: i for i, iid in enumerate(items)}
        interactions = sp.csr_matrix(interactions, dtype=np.float32)
        interactions.eliminate_zeros()
        counts = np.diff(interactions.tocsc().indptr).astype(np.float32)
        popularity = np.log1p(counts) / max(float(np.log1p(counts.max())) if counts.size else 0.0, 1e-9)
        tag_vocab, tag_matrix = tag_features(items, catalog)
        similarity = item_similarity(interactions, neighbours, shrink).T.tocsr()
        if (vectors is not None and previous is not None and previous.near is not None
                and list(previous.items) == list(items) and previous.vectors is not None
                and np.array_equal(previous.vectors, vectors)):
            near = previous.near
        else:
            near = near_pairs(vectors) if vectors is not None else None
        same_start, started = same_start_matrix(starts, interactions) if starts is not None else (None, None)
        return cls(list(items), index, catalog, popularity.astype(np.float32), counts,
                   similarity, tag_vocab, tag_matrix, vectors, near, same_start=same_start, started=started)

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


def interaction_matrix(events: Iterable[Event], index: Mapping[str, int], starts: StartTracker | None = None
                       ) -> sp.csr_matrix:
    """users x items: the latest rating of each (user, item), else IMPLICIT_VALUE when
    the user has any other positive event on it; dislikes, skips, searches count not."""
    return interaction_matrix_from_rows([[(e.user_id, e.item_id, e.type, e.value, e.ts) for e in events]], index, starts)


INTERACTION_COLUMNS = ("user_id", "item_id", "type", "value", "ts")  # what interaction_matrix_from_rows reads, in order
_COMPACT_AT = 1 << 18  # buffered interactions that trigger folding repeats of a (user, item) pair


def interaction_matrix_from_rows(chunks: Iterable[Sequence[tuple]], index: Mapping[str, int],
                                 starts: StartTracker | None = None) -> sp.csr_matrix:
    """interaction_matrix over chunks of (user_id, item_id, type, value, ts) tuples in event
    order (EventStore.event_field_chunks): the item side is built from a streaming
    cursor, holding numpy arrays of (user, item) pairs, not the events. Pairs are
    folded whenever 262,144 are buffered, so memory follows the distinct pairs.
    starts: given, it learns each user's first items (rows as the matrix's) on the way."""
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
        for user, item, type_, value, ts in chunk:
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
            if starts is not None and ((ts.__class__ is int and ts >= 0) or (ts := usable_ts(ts)) is not None):
                starts.add(row, col, ts)  # an event whose time cannot be read starts nobody
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
