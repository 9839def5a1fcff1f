"""A local copy of profile vectors, so that a one-shot `tastebud recommend` reads
a user's two vectors without importing chromadb (about 1.5 s of a 3 s command on
2 busy cores; the import alone, before any client is opened).

One SQLite file (stdlib `sqlite3`) next to the item-side cache, one row per vector
id (`{user_id}:{horizon}`, newest wins, so it stays as big as Chroma's `profiles`
collection): the vector and the `content_hash` it was encoded from
(`vector_content_hash(text, embedder name)`, the same as Chroma's metadata). A
vector is a function of that hash, so a reader that asks with the hash of the
profile's current text can never get a stale vector, whatever happened to the
copy or to Chroma since: a miss falls back to Chroma. Rows are written where
vectors are encoded (`sync_profile_vectors`) and where Chroma's current ones are
read (`RecommendationService`). Best effort: an error reading or writing the
file is a miss, never a failure.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

FILENAME = "profile_vectors.sqlite"


class ProfileVectorCache:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS vectors (id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, "
                     "vector BLOB NOT NULL)")
        return conn

    def get(self, wanted: Mapping[str, str]) -> dict[str, np.ndarray]:
        """{vector id: vector} for the ids in `wanted` ({id: content hash}) whose
        stored hash is the one wanted; the others are left out."""
        if not wanted or not self.path.is_file():
            return {}
        ids = list(wanted)
        try:
            with closing(sqlite3.connect(self.path, timeout=10)) as conn:
                rows = conn.execute(
                    f"SELECT id, content_hash, vector FROM vectors WHERE id IN ({','.join('?' * len(ids))})", ids,
                ).fetchall()
        except sqlite3.Error:
            return {}
        return {rid: np.frombuffer(blob, dtype=np.float32).copy()
                for rid, digest, blob in rows if wanted.get(rid) == digest}

    def put(self, ids: Iterable[str], hashes: Iterable[str], vectors: Iterable[np.ndarray]) -> None:
        rows = [(str(rid), str(digest), np.ascontiguousarray(vec, dtype=np.float32).tobytes())
                for rid, digest, vec in zip(ids, hashes, vectors)]
        if not rows:
            return
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany("INSERT OR REPLACE INTO vectors (id, content_hash, vector) VALUES (?, ?, ?)", rows)
        except (sqlite3.Error, OSError):
            pass

    def delete(self, ids: Iterable[str]) -> int:
        """Remove these vector ids (a forgotten user) with their bytes: freed cells
        zeroed (secure_delete) and the WAL checkpointed to zero length, so neither
        the file nor its WAL keeps a copy. Returns the rows removed."""
        ids = [str(i) for i in ids]
        if not ids or not self.path.is_file():
            return 0
        with closing(sqlite3.connect(self.path, timeout=10)) as conn:
            conn.execute("PRAGMA secure_delete=ON")
            with conn:
                removed = conn.execute(f"DELETE FROM vectors WHERE id IN ({','.join('?' * len(ids))})", ids).rowcount
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed
