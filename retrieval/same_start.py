"""What people went on to like after starting where this user starts: the
recommender's `same_start` part, for users with short histories.

Co-occurrence from one to five items made cold users' lists worse than plain
popularity in every form tried (docs/design.md, "Session 9: cold users and new
items"): an item's neighbours are what its long-time fans like, not what somebody
new to it goes on to like. This part asks the second question directly. From the
other users' histories, same_start[i, j] is the share of the users whose first
START_ITEMS items included i who went on to like j later (a positive interaction
with j that is not among their first items), shrunk towards 0 for rarely-first items:
count / (users who started with i + START_SHRINK). A user's part is the mean of
the rows of their own first items, so the score reads as a share of people.

K and the shrinkage were chosen on the cold-user protocol on the validation split of
ml-latest-small's training part (three samples of 200 users, seeds 0-2, the blend
without semantic parts plus this part at weight 1, a scratch run): NDCG@10 at 1 / 3 / 5
events K 5: 0.0571 / 0.0573 / 0.0638; K 10: 0.0600 / 0.0601 / 0.0653; K 20: 0.0580 /
0.0595 / 0.0657; K 10 with shrinkage 20: 0.0593 / 0.0589 / 0.0666 (Pop 0.0560 / 0.0566 /
0.0582). The weight: retrieval/recommender.py, SAME_START_WEIGHT.
"""

from __future__ import annotations

from bisect import insort
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

START_ITEMS = 10  # a user's "start": their first this many distinct items
START_SHRINK = 5.0  # added to the count of users who started with an item
START_KEEP = 100  # the strongest followers each item keeps (memory bounded in the catalog size)
POSITIVE_VALUE = 4.0  # an interaction value at or above this is positive (a rating of 4/5, or IMPLICIT_VALUE)
# The log and `why` cite the two counts behind a share only when at least this many users
# started with the item: "1 of the 2 who started with X" would say what one person did.
CITE_FROM = 10
BLOCK_ITEMS = 1024


class StartTracker:
    """Each user's first START_ITEMS distinct items by (time, arrival) from a stream in
    any order: memory is users x START_ITEMS, never the events. An item counts from its
    earliest event."""

    def __init__(self, k: int = START_ITEMS):
        self.k = k
        self.firsts: dict[int, list[tuple[int, int, int]]] = {}  # user row -> sorted (ts, arrival, item col)
        self.arrival = 0

    def add(self, row: int, col: int, ts: int) -> None:
        self.arrival += 1
        firsts = self.firsts.get(row)
        if firsts is None:
            self.firsts[row] = [(ts, self.arrival, col)]
            return
        if len(firsts) >= self.k and ts >= firsts[-1][0]:
            return  # not earlier than the k-th: most rows of a time-ordered stream end here
        key = (ts, self.arrival, col)
        for at, entry in enumerate(firsts):
            if entry[2] == col:
                if key >= entry:
                    return
                del firsts[at]
                break
        insort(firsts, key)
        if len(firsts) > self.k:
            firsts.pop()

    def matrix(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """users x items, 1 where the item is among the user's first items."""
        rows = [r for r, firsts in self.firsts.items() for _ in firsts]
        cols = [c for firsts in self.firsts.values() for _, _, c in firsts]
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))


def user_start(items_in_order: Iterable[str], index: Mapping[str, int], k: int = START_ITEMS) -> list[int]:
    """The columns of a user's first k distinct items (their interactions, in time order)."""
    out: list[int] = []
    for item in items_in_order:
        col = index.get(item)
        if col is not None and col not in out:
            out.append(col)
            if len(out) == k:
                break
    return out


def same_start_matrix(starts: sp.csr_matrix, interactions: sp.csr_matrix, keep: int = START_KEEP,
                      shrink: float = START_SHRINK) -> tuple[sp.csr_matrix, np.ndarray]:
    """(items x items shares, users who started with each item). starts: users x items
    (StartTracker.matrix); interactions: users x items values (interaction_matrix), the
    same rows. A user's first items are not what they went on to like, so they are left out."""
    starts = sp.csr_matrix(starts, dtype=np.float32)
    liked = sp.csr_matrix(interactions, dtype=np.float32)
    liked.data = (liked.data >= POSITIVE_VALUE).astype(np.float32)
    liked = liked - liked.multiply(starts)  # later positives only
    liked.eliminate_zeros()
    started = np.asarray(starts.sum(axis=0)).ravel().astype(np.float32)
    starts_t = starts.T.tocsr()
    n = starts.shape[1]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for lo in range(0, n, BLOCK_ITEMS):
        block = (starts_t[lo:lo + BLOCK_ITEMS] @ liked).tocsr()
        block.sort_indices()  # in column order, so which tied followers are kept does not hang on the product's layout
        for r in range(block.shape[0]):
            a, b = block.indptr[r], block.indptr[r + 1]
            if a == b:
                continue
            data, idx = block.data[a:b], block.indices[a:b]
            if b - a > keep:
                top = np.argpartition(-data, keep - 1)[:keep]
                data, idx = data[top], idx[top]
            rows.append(np.full(idx.size, lo + r, dtype=np.int64))
            cols.append(idx.astype(np.int64))
            vals.append(data / (started[lo + r] + shrink))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32), started
    shares = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                           dtype=np.float32)
    return shares, started


def start_part(shares: sp.csr_matrix, start: Sequence[int]) -> np.ndarray:
    """A user's part over the catalog: the mean of their first items' rows."""
    n = shares.shape[1]
    if not start:
        return np.zeros(n, dtype=np.float32)
    return (np.asarray(shares[list(start)].sum(axis=0)).ravel() / len(start)).astype(np.float32)


def followed_count(share: float, started: float, shrink: float = START_SHRINK) -> int:
    """The whole number of users behind a stored share (share = count / (started + shrink))."""
    return int(round(float(share) * (float(started) + shrink)))
