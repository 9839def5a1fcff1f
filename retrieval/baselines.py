"""The baselines a recommender engineer reaches for first: Pop, ItemKNN, EASE.

All three learn from `TrainData.binary` (1 = the user interacted with the item
in train, whatever the rating; negative feedback excluded) and follow the
`Scorer` protocol of retrieval.evaluation: `fit(train)`, then
`score(user_ids) -> (users × catalog)` array. Items with no train interaction
get score 0 from every model (Pop: count 0, ItemKNN/EASE: no similarity), so
they rank last, in catalog order.

- Pop: number of train users who interacted with the item.
- ItemKNN: item-item cosine on the binary matrix,
  sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink), self-similarity
  zeroed, each item keeps its 100 most similar items, shrink 0. User score for
  item j = Σ over the user's train items i of sim(i, j). This plain setting is
  the one that reproduces the reference (0.0774 vs 0.0772); it is not the best
  ItemKNN. Measured on the same split (NDCG@10): shrink 10 -> 0.081; neighbours
  kept per *target* item -> 0.091; rating-valued cosine with target
  neighbourhoods -> 0.103 (on a par with EASE). `strong_itemknn()` builds that
  last one.
- EASE (Steck 2019): B = I - P diagMat(1/diag(P)), P = (XᵀX + λI)^-1, diag(B)=0,
  λ=500; score = X_u B.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from tastebud.retrieval.evaluation import TrainData


class _Base:
    name = "base"

    def __init__(self) -> None:
        self.train: TrainData | None = None

    def _x(self, user_ids: Sequence[str]) -> sp.csr_matrix:
        if self.train is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self.train.binary[self.train.rows(user_ids)]


class Pop(_Base):
    name = "pop"

    def fit(self, train: TrainData) -> "Pop":
        self.train = train
        self.popularity = np.asarray(train.binary.sum(axis=0), dtype=np.float64).ravel()
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        if self.train is None:
            raise RuntimeError("pop: fit() first")
        return np.broadcast_to(self.popularity, (len(user_ids), self.popularity.size)).copy()


def _active(x: sp.csr_matrix) -> np.ndarray:
    """Columns with at least one interaction: the only ones that can get a score."""
    return np.flatnonzero(np.diff(x.tocsc().indptr) > 0)


class ItemKNN(_Base):
    """Item-item cosine kNN. Defaults reproduce the reference (docs/design.md#reference-baselines) (NDCG@10 0.0772).

    neighbours: similar items kept per item (0 = keep all).
    shrink: added to the cosine denominator; damps similarities built on few co-raters.
    weighting: "binary" (interaction matrix) or "rating" (rating values, for
        similarity and for the user's side of the score).
    neighbourhood: "source" = each of the user's items i spreads to its own top
        neighbours (what co-occurrence candidate generation does); "target" =
        item j is scored from its own top neighbours (classic item-based CF).
    """

    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 0.0, weighting: str = "binary",
                 neighbourhood: str = "source", name: str | None = None, chunk: int = 1024) -> None:
        super().__init__()
        if weighting not in ("binary", "rating"):
            raise ValueError("weighting must be 'binary' or 'rating'")
        if neighbourhood not in ("source", "target"):
            raise ValueError("neighbourhood must be 'source' or 'target'")
        self.neighbours = neighbours
        self.shrink = shrink
        self.weighting = weighting
        self.neighbourhood = neighbourhood
        self.chunk = chunk
        if name:
            self.name = name

    def _matrix(self, train: TrainData) -> sp.csr_matrix:
        return train.binary if self.weighting == "binary" else train.ratings

    def fit(self, train: TrainData) -> "ItemKNN":
        self.train = train
        self.cols = _active(train.binary)
        xa = sp.csc_matrix(self._matrix(train)[:, self.cols], dtype=np.float64)
        n = xa.shape[1]
        norms = np.sqrt(np.asarray(xa.multiply(xa).sum(axis=0)).ravel())
        xt = xa.T.tocsr()
        k = n - 1 if self.neighbours <= 0 else min(self.neighbours, n - 1)
        rows, cols, vals = [], [], []
        for start in range(0, n, self.chunk):  # dense blocks of rows keep memory at chunk × n
            stop = min(start + self.chunk, n)
            block = (xt[start:stop] @ xa).toarray()
            block /= np.outer(norms[start:stop], norms) + self.shrink + 1e-12
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            if k <= 0:
                continue
            if self.neighbours <= 0:
                dense = sp.coo_matrix(block)
                rows.append(dense.row + start)
                cols.append(dense.col)
                vals.append(dense.data)
                continue
            keep = np.argpartition(-block, k - 1, axis=1)[:, :k]
            kept = np.take_along_axis(block, keep, axis=1)
            rows.append(np.repeat(np.arange(start, stop), keep.shape[1]))
            cols.append(keep.ravel())
            vals.append(kept.ravel())
        if rows:
            sim = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        else:
            sim = sp.csr_matrix((n, n))
        sim.eliminate_zeros()
        # row i holds i's neighbours; "target" keeps, for each scored item j, j's neighbours
        self.sim = (sim if self.neighbourhood == "source" else sim.T).tocsr().astype(np.float32)
        return self

    def neighbours_of(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        """The most similar items of one item (for explanations and inspection)."""
        if self.train is None:
            raise RuntimeError("itemknn: fit() first")
        pos = np.searchsorted(self.cols, self.train.item_index[item_id])
        if pos >= self.cols.size or self.cols[pos] != self.train.item_index[item_id]:
            return []
        row = self.sim[pos] if self.neighbourhood == "source" else self.sim[:, pos].T.tocsr()
        order = np.argsort(-row.data, kind="stable")[:n]
        return [(self.train.items[self.cols[row.indices[i]]], float(row.data[i])) for i in order]

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        if self.train is None:
            raise RuntimeError(f"{self.name}: fit() first")
        x = self._matrix(self.train)[self.train.rows(user_ids)][:, self.cols]
        out = np.zeros((len(user_ids), self.train.n_items), dtype=np.float32)
        out[:, self.cols] = (x @ self.sim).toarray()
        return out


class EASE(_Base):
    name = "ease"

    def __init__(self, lam: float = 500.0, dtype: type = np.float32) -> None:
        super().__init__()
        self.lam = lam
        # float32 halves the fit time; P differs from float64 by ~1e-6 relative, rankings do not move
        self.dtype = np.dtype(dtype)

    def fit(self, train: TrainData) -> "EASE":
        from scipy.linalg import lapack

        self.train = train
        x = train.binary
        self.cols = _active(x)
        if self.cols.size == 0:  # nothing to learn from (e.g. every user is a cold one): every score 0
            self.b = np.zeros((0, 0), dtype=np.float32)
            return self
        xa = x[:, self.cols].astype(np.float64)
        gram = (xa.T @ xa).toarray().astype(self.dtype)
        gram[np.diag_indices_from(gram)] += self.lam
        potrf, potri = (lapack.spotrf, lapack.spotri) if self.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
        chol, info = potrf(gram, lower=False, overwrite_a=True, clean=True)
        if info != 0:
            raise ArithmeticError(f"EASE: XᵀX + λI is not positive definite (potrf info {info})")
        p, info = potri(chol, lower=False, overwrite_c=True)
        if info != 0:
            raise ArithmeticError(f"EASE: inversion failed (potri info {info})")
        p = np.triu(p)
        p += np.triu(p, 1).T  # potri fills one triangle of the symmetric inverse
        b = p / (-np.diag(p))
        np.fill_diagonal(b, 0.0)
        self.b = b.astype(np.float32, copy=False)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        x = self._x(user_ids)[:, self.cols]
        out = np.zeros((len(user_ids), self.train.n_items), dtype=np.float32)
        out[:, self.cols] = x @ self.b
        return out


def default_baselines() -> list[_Base]:
    """Pop, ItemKNN and EASE(λ=500) as the protocol's reference defines them."""
    return [Pop(), ItemKNN(), EASE()]


def strong_itemknn() -> ItemKNN:
    """The best ItemKNN setting found on ml-latest-small (not the reference one)."""
    return ItemKNN(neighbours=100, shrink=0.0, weighting="rating", neighbourhood="target", name="itemknn_rating_target")
