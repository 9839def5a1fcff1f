"""What a collection's records held a moment ago, for a process that reads the
same ones again and again: the server's live path averages the item vectors its
users cite, hundreds per batch, and Chroma's reads, these among them, took more of
its samples than its writes (py-spy over `tastebud serve` at 300 events/s).
Vectors are kept read-only: every caller shares them.

This process's writes drop what they touch at once (and a read that raced with
one is not kept); another process's re-indexed record is seen within `seconds`.
A profile vector's content hash names the item vectors it was averaged from, so
one made from a stale item vector is found and rewritten by the next sync."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Mapping, Sequence


ITEM_MEMO_S = 30.0  # how long a long-running process trusts an item vector it read (another process may re-index it)


class RecordMemo:
    def __init__(self, seconds: float, max_records: int = 50_000):
        self.seconds = seconds
        self.max_records = max_records
        self._records: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._until = time.monotonic() + seconds
        self._writes = 0  # bumped by every drop: a read that overlapped one is not kept
        self.hits = self.misses = 0

    def lookup(self, ids: Sequence[str]) -> tuple[dict[str, Any], list[str], int]:
        """(the records held, the ids to read, the token `keep` wants back)."""
        with self._lock:
            if time.monotonic() >= self._until:
                self._records, self._until = {}, time.monotonic() + self.seconds
            found = {rid: self._records[rid] for rid in ids if rid in self._records}
            self.hits += len(found)
            self.misses += len(ids) - len(found)
            return found, [rid for rid in ids if rid not in found], self._writes

    def keep(self, read: Mapping[str, Any], token: int) -> None:
        with self._lock:
            if token == self._writes and len(self._records) + len(read) <= self.max_records:
                self._records.update(read)

    def drop(self, ids: Iterable[str] | None) -> None:
        """Records about to be written (None: all of them)."""
        with self._lock:
            self._writes += 1
            if ids is None:
                self._records.clear()
            else:
                for rid in ids:
                    self._records.pop(rid, None)
