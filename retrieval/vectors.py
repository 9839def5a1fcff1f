"""Chroma vector store: an `items` and a `profiles` collection, cosine space.

A local `PersistentClient` under `settings.chroma_path` by default; an
`HttpClient` when `settings.chroma_url` is set. Vectors come from our own
embedder (collections have no embedding function), and every record carries a
`content_hash` of (embedder name, text) in its metadata: `sync` re-encodes and
upserts only records whose hash changed or that are new, and never deletes
and re-adds. A change of embedding model changes every hash, so the next sync
re-encodes everything, as it must. Texts are not stored in Chroma (the event
store and the profile versions hold them; Chroma's full-text index on documents
tripled the upsert time).

Profile vectors have ids `{user_id}:{horizon}` (e.g. `42:long`, `42:short`) and
metadata `user_id`, `horizon`, `version`. They are computed from item vectors
(retrieval/profile_vectors.py) and written with `store`, which keeps the same
rule: a record is rewritten only when its `content_hash` changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import numpy as np

from tastebud.errors import ConfigError, StoreError
from tastebud.retrieval.embedder import known_dim
from tastebud.retrieval.memo import RecordMemo

if TYPE_CHECKING:
    from tastebud.profiles.events import Item
    from tastebud.retrieval.embedder import Embedder
    from tastebud.settings import Settings

ITEMS = "items"
PROFILES = "profiles"
SPACE = "cosine"
# Nothing searches profile vectors by similarity, yet Chroma builds a graph for every
# collection: 32 profile vectors cost 63 ms of CPU with the default (16 neighbours,
# ef_construction 100), 33 ms with this one (docs/design.md#profile-vectors-graph).
GRAPHS: dict[str, dict[str, Any]] = {ITEMS: {}, PROFILES: {"max_neighbors": 8, "ef_construction": 32}}
HORIZONS = ("long", "short")
RESERVED_KEYS = ("content_hash", "embedder")


def vector_content_hash(text: str, embedder_name: str) -> str:
    """The `content_hash` metadata of a vector record: what its vector was encoded from."""
    return hashlib.sha256(f"{embedder_name}\x1f{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def profile_id(user_id: str, horizon: str) -> str:
    return f"{user_id}:{horizon}"


@dataclass(frozen=True)
class SyncReport:
    new: int = 0
    updated: int = 0  # text changed: re-encoded and upserted
    unchanged: int = 0  # same text: not re-encoded
    metadata_only: int = 0  # of the unchanged, how many had new metadata (updated without encoding)

    @property
    def encoded(self) -> int:
        return self.new + self.updated

    def __add__(self, other: "SyncReport") -> "SyncReport":
        return SyncReport(self.new + other.new, self.updated + other.updated, self.unchanged + other.unchanged,
                          self.metadata_only + other.metadata_only)

    def as_dict(self) -> dict[str, int]:
        return {"new": self.new, "updated": self.updated, "unchanged": self.unchanged, "metadata_only": self.metadata_only}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity, 1 = same direction
    metadata: Mapping[str, Any]


def _chroma_settings():
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def make_client(settings: "Settings"):
    """PersistentClient under the home, or HttpClient when chroma_url is set."""
    try:
        import chromadb
    except ImportError as exc:  # pragma: no cover - chromadb is a hard dependency
        raise StoreError("chromadb is not installed") from exc
    if settings.chroma_url:
        url = urlparse(settings.chroma_url if "://" in settings.chroma_url else f"http://{settings.chroma_url}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"bad chroma_url {settings.chroma_url!r}", hint="e.g. http://127.0.0.1:8000")
        port = url.port or (443 if url.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https", settings=_chroma_settings())
            client.heartbeat()
        except Exception as exc:
            raise StoreError(f"cannot reach Chroma at {settings.chroma_url}: {exc.__class__.__name__}: {exc}") from exc
        return client
    path = settings.chroma_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:
        raise StoreError(f"cannot open Chroma at {path}: {exc.__class__.__name__}: {exc}") from exc


def _clean_metadata(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """Chroma takes str/int/float/bool and non-empty lists of those; drop the rest."""
    out: dict[str, Any] = {}
    for key, value in (meta or {}).items():
        if key in RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if value:
                out[key] = list(value)
        elif isinstance(value, (str, int, float, bool)):
            out[key] = value
        else:
            out[key] = str(value)
    return out


class VectorCollection:
    """One Chroma collection whose vectors we compute and keep in step with their texts."""

    def __init__(self, collection: Any, embedder: "Embedder", batch_size: int, reopen: Any = None):
        self.collection = collection
        self.reopen = reopen  # the collection by its name again, after `index --rebuild-profiles` elsewhere
        self.embedder = embedder
        self.batch_size = max(1, batch_size)
        self.encode_seconds = 0.0  # spent in embedder.encode by sync (a lazy model's loading included)
        self.memo: RecordMemo | None = None  # get_hashed's recent answers, in a long-running process (retrieval/memo.py)

    @property
    def name(self) -> str:
        return self.collection.name

    def count(self) -> int:
        return self._call("count", self.collection.count)

    def _call(self, what: str, fn, *args, **kwargs):
        writes = self.memo is not None and what in ("upsert", "update", "delete")
        if writes:
            self.memo.drop(kwargs.get("ids"))  # type: ignore[union-attr]
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a handle to a collection since recreated: once more on the new one
                if not (type(exc).__name__ == "NotFoundError" and self.reopen and getattr(fn, "__self__", 0) is self.collection):
                    raise
                self.collection = self.reopen()
                return getattr(self.collection, fn.__name__)(*args, **kwargs)
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            raise StoreError(f"Chroma {what} on {self.collection.name!r} failed: {exc.__class__.__name__}: {exc}") from exc
        finally:
            if writes:  # and again: a read that began during the write is not kept either
                self.memo.drop(kwargs.get("ids"))  # type: ignore[union-attr]

    def _batches(self, seq: Sequence[Any]) -> Iterable[Sequence[Any]]:
        for start in range(0, len(seq), self.batch_size):
            yield seq[start : start + self.batch_size]

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in self._batches(list(ids)):
            got = self._call("get", self.collection.get, ids=list(chunk), include=["metadatas"])
            for rid, meta in zip(got["ids"], got["metadatas"]):
                out[rid] = dict(meta or {})
        return out

    def _plan(self, ids: Sequence[str], hashes: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None] | None
              ) -> tuple[list[int], list[dict[str, Any]], list[tuple[str, dict[str, Any]]], tuple[int, int, int]]:
        """Which records must be (re)written: (their positions, every record's full
        metadata, unchanged records whose metadata alone changed, (new, updated, unchanged))."""
        ids = [str(i) for i in ids]
        metas = list(metadatas) if metadatas is not None else [None] * len(ids)
        if not (len(ids) == len(hashes) == len(metas)):
            raise ValueError("ids, texts and metadatas must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one sync")
        stored = self.metadata(ids) if ids else {}
        name = self.embedder.name
        write: list[int] = []
        fulls: list[dict[str, Any]] = []
        meta_only: list[tuple[str, dict[str, Any]]] = []
        new = updated = unchanged = 0
        for pos, (rid, digest, meta) in enumerate(zip(ids, hashes, metas)):
            full = {**_clean_metadata(meta), "content_hash": digest, "embedder": name}
            old = stored.get(rid)
            if old is not None:
                # Chroma merges metadata on upsert/update: None deletes a key we no longer set
                full.update({key: None for key in old if key not in full})
            fulls.append(full)
            if old is not None and old.get("content_hash") == digest:
                unchanged += 1
                if _meta_differs(old, full):
                    meta_only.append((rid, full))
                continue
            new, updated = (new + 1, updated) if old is None else (new, updated + 1)
            write.append(pos)
        return write, fulls, meta_only, (new, updated, unchanged)

    def _update_metadata(self, meta_only: list[tuple[str, dict[str, Any]]]) -> None:
        for start in range(0, len(meta_only), self.batch_size):
            chunk = meta_only[start:start + self.batch_size]
            self._call("update", self.collection.update, ids=[r for r, _ in chunk], metadatas=[m for _, m in chunk])

    def sync(self, ids: Sequence[str], texts: Sequence[str],
             metadatas: Sequence[Mapping[str, Any] | None] | None = None) -> SyncReport:
        """Make the collection hold `texts` (and metadata) under `ids`, encoding only what changed."""
        ids = [str(i) for i in ids]
        texts = list(texts)
        if len(ids) != len(texts):
            raise ValueError("ids, texts and metadatas must have the same length")
        if not ids:
            return SyncReport()
        name = self.embedder.name
        write, fulls, meta_only, (new, updated, unchanged) = self._plan(
            ids, [vector_content_hash(t, name) for t in texts], metadatas)
        self._encode_and_upsert([ids[i] for i in write], [texts[i] for i in write], [fulls[i] for i in write])
        self._update_metadata(meta_only)
        return SyncReport(new, updated, unchanged, len(meta_only))

    def store(self, ids: Sequence[str], hashes: Sequence[str], vectors: np.ndarray,
              metadatas: Sequence[Mapping[str, Any] | None] | None = None) -> SyncReport:
        """Like `sync`, for vectors computed elsewhere (profile centroids): `hashes[i]`
        names what `vectors[i]` was computed from; records whose stored hash is the
        same are not rewritten."""
        ids = [str(i) for i in ids]
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors must have the same length")
        if not ids:
            return SyncReport()
        write, fulls, meta_only, (new, updated, unchanged) = self._plan(ids, list(hashes), metadatas)
        vectors = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(write), self.batch_size):
            chunk = write[start:start + self.batch_size]
            self._call("upsert", self.collection.upsert, ids=[ids[i] for i in chunk], embeddings=vectors[chunk],
                       metadatas=[fulls[i] for i in chunk])
        self._update_metadata(meta_only)
        return SyncReport(new, updated, unchanged, len(meta_only))

    ENCODE_CHUNK = 50_000  # texts per encode call: the model sorts by length within a call, so bigger pads less

    def _encode_and_upsert(self, ids: list[str], texts: list[str], metas: list[dict[str, Any]]) -> None:
        # Sequential on purpose: overlapping encode and upsert in a thread was measured
        # slower on 2 cores (ratio 0.75 vs 0.91), both want every core.
        for start in range(0, len(ids), self.ENCODE_CHUNK):
            chunk = texts[start : start + self.ENCODE_CHUNK]
            unique = list(dict.fromkeys(chunk))  # a text twice (e.g. long == short horizon) is encoded once
            t0 = time.perf_counter()
            encoded = self.embedder.encode(unique)
            self.encode_seconds += time.perf_counter() - t0
            if len(unique) == len(chunk):
                vectors = encoded
            else:
                row = {text: i for i, text in enumerate(unique)}
                vectors = encoded[[row[t] for t in chunk]]
            for offset in range(0, len(vectors), self.batch_size):
                part = vectors[offset : offset + self.batch_size]
                lo, hi = start + offset, start + offset + len(part)
                self._call("upsert", self.collection.upsert, ids=ids[lo:hi], embeddings=part, metadatas=metas[lo:hi])

    def query(
        self, query: str | np.ndarray | Sequence[float], k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """Nearest records to a text or a vector, best first, with cosine similarity."""
        return self.query_many([query] if isinstance(query, str) else [np.asarray(query, dtype=np.float32)], k, where)[0]

    def query_many(
        self, queries: Sequence[str] | np.ndarray | Sequence[np.ndarray], k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[list[Hit]]:
        if len(queries) == 0:
            return []
        if isinstance(queries[0], str):
            vectors = self.embedder.encode(list(queries))
        else:
            vectors = np.asarray(queries, dtype=np.float32)
            if vectors.ndim == 1:
                vectors = vectors[None, :]
        dim = known_dim(self.embedder)  # a lazy embedder's model is not loaded just to check (Chroma checks too)
        if dim is not None and vectors.shape[1] != dim:
            raise ValueError(f"query vectors have dim {vectors.shape[1]}, the collection holds {dim}")
        size = self.count()
        if size == 0 or k <= 0:
            return [[] for _ in range(len(vectors))]
        got = self._call(
            "query", self.collection.query,
            query_embeddings=vectors, n_results=min(k, size), where=dict(where) if where else None,
            include=["distances", "metadatas"],
        )
        out = []
        for ids, dists, metas in zip(got["ids"], got["distances"], got["metadatas"]):
            out.append([Hit(i, float(1.0 - d), dict(m or {})) for i, d, m in zip(ids, dists, metas)])
        return out

    def get_hashed(self, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """{id: (content_hash, vector)} for the ids stored; the hash says what the vector encodes."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, tuple[str, np.ndarray]] = {}
        token = 0
        if self.memo is not None:
            found, wanted, token = self.memo.lookup(wanted)
        read: dict[str, tuple[str, np.ndarray]] = {}
        for chunk in self._batches(wanted):
            got = self._call("get", self.collection.get, ids=list(chunk), include=["embeddings", "metadatas"])
            for rid, vec, meta in zip(got["ids"], got["embeddings"], got["metadatas"]):
                vector = np.asarray(vec, dtype=np.float32)
                vector.setflags(write=False)  # may be remembered and handed to the next caller too
                read[rid] = (str((meta or {}).get("content_hash", "")), vector)
        if self.memo is not None and read:
            self.memo.keep(read, token)
        return {**found, **read}

    def get_vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(found ids in the order asked, (n × dim) float32); ids not stored are left out."""
        found: dict[str, np.ndarray] = {}
        for chunk in self._batches([str(i) for i in ids]):
            got = self._call("get", self.collection.get, ids=list(chunk), include=["embeddings"])
            for rid, vec in zip(got["ids"], got["embeddings"]):
                found[rid] = np.asarray(vec, dtype=np.float32)
        order = [str(i) for i in ids if str(i) in found]
        return order, (np.stack([found[i] for i in order]) if order else self._empty())

    def all_vectors(self, where: Mapping[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
        """Every stored vector (for exact, in-memory scoring of a whole catalog)."""
        ids: list[str] = []
        parts: list[np.ndarray] = []
        offset = 0
        while True:
            got = self._call(
                "get", self.collection.get, where=dict(where) if where else None, include=["embeddings"],
                limit=self.batch_size, offset=offset,
            )
            if not got["ids"]:
                break
            ids.extend(got["ids"])
            parts.append(np.asarray(got["embeddings"], dtype=np.float32))
            offset += len(got["ids"])
        return ids, (np.concatenate(parts) if parts else self._empty())

    def _empty(self) -> np.ndarray:
        """No vectors: (0, dim), or (0, 0) while the embedder's dimension is unknown
        (a lazy embedder is not loaded to find out)."""
        return np.zeros((0, known_dim(self.embedder) or 0), dtype=np.float32)


def _norm_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in meta.items() if v is not None}


def _meta_differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return _norm_meta(old) != _norm_meta(new)


def item_metadata(item: "Item") -> dict[str, Any]:
    """Only the title rides along (for display of nearest hits). Categories stay in
    the event store, which filters them: a list field costs Chroma about 40% more
    per upsert (measured: 3,000 items 0.64 s title-only vs 0.89 s with the list)."""
    return {"title": item.title}


class VectorStore:
    """The two collections over one client; build it with `VectorStore.from_settings`."""

    def __init__(self, client: Any, embedder: "Embedder", batch_size: int | None = None):
        self.client = client
        self.embedder = embedder
        try:
            max_batch = int(client.get_max_batch_size())
        except Exception:  # pragma: no cover - older servers
            max_batch = 1000
        self.batch_size = min(batch_size or max_batch, max_batch)
        self.local_path: Any = None  # the PersistentClient's directory, when local
        self.items = VectorCollection(self._collection(ITEMS), embedder, self.batch_size, lambda: self._collection(ITEMS))
        self.profiles = VectorCollection(self._collection(PROFILES), embedder, self.batch_size, lambda: self._collection(PROFILES))

    @classmethod
    def from_settings(cls, settings: "Settings", embedder: "Embedder | None" = None) -> "VectorStore":
        """Without an embedder, the one settings name, loaded only when something must be encoded."""
        if embedder is None:
            from tastebud.retrieval.embedder import LazyEmbedder, embedder_name, get_embedder

            embedder = LazyEmbedder(embedder_name(settings), lambda: get_embedder(settings))
        store = cls(make_client(settings), embedder)
        store.local_path = None if settings.chroma_url else settings.chroma_path  # for erase_user's compaction
        return store

    def _collection(self, name: str):
        try:
            col = self.client.get_or_create_collection(
                name, configuration={"hnsw": {"space": SPACE, **GRAPHS[name]}}, embedding_function=None,
            )
        except Exception as exc:
            raise StoreError(f"cannot open Chroma collection {name!r}: {exc.__class__.__name__}: {exc}") from exc
        space = ((col.configuration or {}).get("hnsw") or {}).get("space") or (col.metadata or {}).get("hnsw:space")
        if space != SPACE:
            raise StoreError(f"Chroma collection {name!r} uses {space!r} distance, tastebud needs {SPACE!r}",
                             hint="it was made by something else; point TASTEBUD_HOME/TASTEBUD_CHROMA_URL elsewhere")
        return col

    def heartbeat(self) -> int:
        try:
            return int(self.client.heartbeat())
        except Exception as exc:
            raise StoreError(f"Chroma is not answering: {exc.__class__.__name__}: {exc}") from exc

    # ---- items ---------------------------------------------------------------
    def sync_items(self, items: Iterable["Item"]) -> SyncReport:
        items = list(items)
        return self.items.sync(
            [i.item_id for i in items], [i.text_for_embedding() for i in items], [item_metadata(i) for i in items]
        )

    # ---- profiles ------------------------------------------------------------
    def sync_profiles(self, records: Iterable[tuple[str, str, str, int]],
                      extra: Mapping[str, Mapping[str, Any]] | None = None) -> SyncReport:
        """records: (user_id, horizon, text, version): vectors encoded from texts; upserts
        `user:horizon` vectors that changed. (Profiles themselves store computed vectors,
        `store_profiles`; this is for callers that have a text about a user.)"""
        ids, texts, metas = [], [], []
        for user_id, horizon, text, version in records:
            if horizon not in HORIZONS:
                raise ValueError(f"unknown horizon {horizon!r}; expected one of {HORIZONS}")
            pid = profile_id(user_id, horizon)
            ids.append(pid)
            texts.append(text)
            metas.append({**((extra or {}).get(pid) or {}), "user_id": str(user_id), "horizon": horizon, "version": int(version)})
        return self.profiles.sync(ids, texts, metas)

    def store_profiles(self, records: Sequence[tuple[str, str, str, np.ndarray, int]]) -> SyncReport:
        """records: (user_id, horizon, content hash, vector, version), vectors computed
        elsewhere (retrieval/profile_vectors.py); unchanged hashes are not rewritten."""
        for _, horizon, *_rest in records:
            if horizon not in HORIZONS:
                raise ValueError(f"unknown horizon {horizon!r}; expected one of {HORIZONS}")
        if not records:
            return SyncReport()
        return self.profiles.store(
            [profile_id(u, h) for u, h, *_ in records], [r[2] for r in records], np.stack([r[3] for r in records]),
            [{"user_id": str(u), "horizon": h, "version": int(v)} for u, h, _, _, v in records])

    def profile_records(self) -> list[tuple[str, str]]:
        """(vector id, user id) of every stored profile vector, paged (for `tastebud doctor`)."""
        out: list[tuple[str, str]] = []
        col = self.profiles
        offset = 0
        while True:
            got = col._call("get", col.collection.get, include=["metadatas"], limit=self.batch_size, offset=offset)
            if not got["ids"]:
                break
            for rid, meta in zip(got["ids"], got["metadatas"] or [None] * len(got["ids"])):
                user = (meta or {}).get("user_id")
                out.append((rid, str(user) if user is not None else rid.rsplit(":", 1)[0]))
            offset += len(got["ids"])
        return out

    def profile_graph_is_current(self) -> bool:
        hnsw = (self.profiles.collection.configuration or {}).get("hnsw") or {}
        return all(hnsw.get(key) == value for key, value in GRAPHS[PROFILES].items())

    def recreate_profile_collection(self) -> None:
        """An empty one with today's graph (Chroma cannot change a graph); the caller refills it."""
        self.profiles._call("delete", self.client.delete_collection, PROFILES)  # "delete": a memo forgets all
        self.profiles.collection = self._collection(PROFILES)

    def delete_profile_vectors(self, ids: Sequence[str]) -> int:
        """Delete profile vectors by id; ids not stored are ignored. Returns how many were asked."""
        ids = [str(i) for i in ids]
        col = self.profiles
        for chunk in col._batches(ids):
            col._call("delete", col.collection.delete, ids=list(chunk))
        return len(ids)

    def profile_vectors(self, user_id: str) -> dict[str, np.ndarray]:
        """{horizon: vector} for the horizons stored for this user."""
        ids, matrix = self.profiles.get_vectors([profile_id(user_id, h) for h in HORIZONS])
        return {pid.rsplit(":", 1)[1]: vec for pid, vec in zip(ids, matrix)}


    # ---- privacy -------------------------------------------------------------
    FLUSH_ID = "__tastebud_flush__"

    def erase_user(self, user_id: str) -> int:
        """Delete the user's profile vectors so that no copy is left behind
        (docs/design.md#privacy). Chroma keeps records in its write-ahead log
        (`embeddings_queue`) and in the HNSW index files until the index is next
        persisted (every `sync_threshold` writes, 1,000 by default), and purges the
        log only up to the persisted point. So the threshold is lowered to 2, the
        records deleted, one other record rewritten as it is (twice: the log is
        purged up to the older of the two segments' marks), and the threshold put
        back; a local directory then gets a VACUUM of chroma.sqlite3, so freed pages
        keep no bytes either (a server's file is its operator's: see the README).
        Measured on chromadb 1.5.9. Returns the vectors deleted. Item vectors hold
        no user data and are left alone."""
        col = self.profiles
        hnsw = dict(((col.collection.configuration or {}).get("hnsw") or {}))
        threshold = int(hnsw.get("sync_threshold") or 1000)
        # Before anything reads the collection: a segment this process has loaded
        # keeps the threshold it was loaded with (then the slow path below runs).
        col._call("modify", col.collection.modify, configuration={"hnsw": {"sync_threshold": 2}})
        try:
            col.collection = self._collection(PROFILES)
            ids = {profile_id(user_id, h) for h in HORIZONS}
            found = col._call("get", col.collection.get, where={"user_id": str(user_id)}, include=[])["ids"]
            present = col._call("get", col.collection.get, ids=sorted(ids), include=[])["ids"]
            doomed = sorted(set(found) | set(present))
            if doomed:
                col._call("delete", col.collection.delete, ids=doomed)
            for _ in range(2):
                self._rewrite_profiles(1)
        finally:
            col._call("modify", col.collection.modify, configuration={"hnsw": {"sync_threshold": threshold}})
            col.collection = self._collection(PROFILES)
        if self.local_path is not None:
            if _local_log_holds(self.local_path, ids | set(doomed)):  # the slow path: write past the threshold
                for _ in range(2):
                    self._rewrite_profiles(threshold)
            _compact_local_chroma(self.local_path)
        return len(doomed)

    def _stored_dim(self) -> int | None:
        """The vector size Chroma holds here (from any item vector), without loading a model."""
        got = self.items._call("get", self.items.collection.get, limit=1, include=["embeddings"])
        embeddings = got.get("embeddings")
        return len(embeddings[0]) if embeddings is not None and len(embeddings) else None

    def _rewrite_profiles(self, n: int) -> None:
        """n writes that change nothing: records upserted as they are (cycling
        through the collection), or a placeholder added and deleted when empty."""
        col = self.profiles
        done = offset = 0
        while done < n:
            got = col._call("get", col.collection.get, limit=min(n - done, self.batch_size), offset=offset,
                            include=["embeddings", "metadatas"])
            if not got["ids"]:
                if offset == 0:
                    dim = known_dim(self.embedder) or self._stored_dim()
                    if dim is None:  # nothing was ever stored with a known size: a placeholder would fix a wrong one
                        return
                    col._call("upsert", col.collection.upsert, ids=[self.FLUSH_ID],
                              embeddings=np.ones((1, dim), dtype=np.float32), metadatas=[{"user_id": self.FLUSH_ID}])
                    col._call("delete", col.collection.delete, ids=[self.FLUSH_ID])
                    done += 2
                offset = 0
                continue
            col._call("upsert", col.collection.upsert, ids=got["ids"], embeddings=got["embeddings"],
                      metadatas=got["metadatas"])
            done += len(got["ids"])
            offset += len(got["ids"])


def _local_log_holds(path: Any, ids: set[str]) -> bool:
    """Whether a local Chroma's write-ahead log still has records of these ids."""
    import sqlite3
    from contextlib import closing
    from pathlib import Path

    db = Path(path) / "chroma.sqlite3"
    if not ids or not db.is_file():
        return False
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        marks = ",".join("?" * len(ids))
        query = f"SELECT 1 FROM embeddings_queue WHERE id IN ({marks}) LIMIT 1"
        return conn.execute(query, sorted(ids)).fetchone() is not None


def _compact_local_chroma(path: Any) -> None:
    """VACUUM a local Chroma's SQLite file (and truncate any WAL): deleted rows
    leave no bytes in free pages. Chroma's own connection must not be mid-write;
    it writes only inside our calls, which are done by now."""
    import sqlite3
    from contextlib import closing
    from pathlib import Path

    db = Path(path) / "chroma.sqlite3"
    if not db.is_file():
        return
    try:
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot compact Chroma's database {db}: {exc}") from exc
