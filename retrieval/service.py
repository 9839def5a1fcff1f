"""Recommendations as a service: profile + vectors + item side + log, and the
deterministic "why" rendering support staff and the agent rely on."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tastebud import pii
from tastebud.profiles.store import EventStore
from tastebud.profiles.versions import ProfileRepository
from tastebud.retrieval.profile_vector_cache import FILENAME as PROFILE_COPY_FILE, ProfileVectorCache
from tastebud.retrieval.reclog import Recommendation, RecommendationLog
from tastebud.retrieval.recommender import (INTERACTION_COLUMNS, RECOMMENDER_PARAMS, ItemSide, Recommender, UserContext,
                                            interaction_matrix_from_rows, profile_text)
from tastebud.retrieval.vectors import vector_content_hash
from tastebud.errors import InputError, NotFoundError
from tastebud.retrieval.why import CATEGORY_ZH, EVENT_TYPE_ZH, render_why, render_why_zh, tag_zh  # noqa: F401  (re-exported)


ITEM_SIDE_FORMAT = 2  # bump when ItemSide's contents or their computation change


def _item_vectors_found(vectors: Any | None, items: Sequence[str]) -> tuple[np.ndarray | None, int]:
    """(the catalog's vectors in `items` order, how many items have one); an item
    not indexed yet gets a zero vector (no semantic score, no near-duplicates)
    until `tastebud index` runs."""
    if vectors is None or not items:
        return None, 0
    ids, vecs = vectors.items.get_vectors(items)
    if not ids:
        return None, 0
    if len(ids) == len(items):
        order = {iid: i for i, iid in enumerate(ids)}
        return np.ascontiguousarray(vecs[[order[i] for i in items]], dtype=np.float32), len(ids)
    index = {iid: i for i, iid in enumerate(items)}
    out = np.zeros((len(items), vecs.shape[1]), dtype=np.float32)
    out[[index[i] for i in ids]] = vecs
    return out, len(ids)


def _item_vectors(vectors: Any | None, items: Sequence[str]) -> np.ndarray | None:
    return _item_vectors_found(vectors, items)[0]


def _build_item_side(store: EventStore, vectors: Any | None, catalog: Mapping[str, Any]) -> tuple[ItemSide, bool]:
    """(the item side, whether every catalog item had a vector)."""
    items = sorted(catalog)
    index = {iid: i for i, iid in enumerate(items)}
    vecs, found = _item_vectors_found(vectors, items)
    interactions = interaction_matrix_from_rows(store.event_field_chunks(*INTERACTION_COLUMNS), index)  # streamed
    side = ItemSide.build(items, catalog, interactions, vecs)
    return side, bool(items) and found == len(items)


def build_item_side(store: EventStore, vectors: Any | None, catalog: Mapping[str, Any] | None = None) -> ItemSide:
    """Item-side state from the whole event store and the item vectors in Chroma."""
    return _build_item_side(store, vectors, catalog if catalog is not None else store.items_by_id())[0]


def item_side_fingerprint(store: EventStore, catalog: Mapping[str, Any], embedder_name: str | None) -> str:
    """What an item side with a vector for every catalog item is a function of:
    every event (append-only, so the max seq and the count), the catalog's texts,
    and the embedder that made the vectors (an item's vector is a function of its
    text and the model, so Chroma need not be asked). A side with items not
    indexed yet also depends on how many item vectors exist: cached_item_side adds that."""
    from sqlalchemy import func, select

    from tastebud.profiles.migrations import events

    with store.engine.connect() as conn:
        max_seq, n_events = conn.execute(select(func.max(events.c.seq), func.count())).one()
    h = hashlib.sha256()
    h.update(f"{ITEM_SIDE_FORMAT}|{RECOMMENDER_PARAMS}|{max_seq}|{n_events}|".encode())
    for iid in sorted(catalog):
        item = catalog[iid]
        h.update(json.dumps([iid, item.title, item.description, list(item.categories), list(item.tags)],
                            ensure_ascii=False).encode("utf-8", "surrogatepass"))
    h.update(f"|{embedder_name or '-'}".encode())
    return h.hexdigest()[:24]


def _save_csr(out: dict[str, Any], name: str, m: sp.csr_matrix | None) -> None:
    if m is None:
        return
    out[f"{name}_data"], out[f"{name}_indices"], out[f"{name}_indptr"] = m.data, m.indices, m.indptr
    out[f"{name}_shape"] = np.asarray(m.shape)


def _load_csr(z: Any, name: str) -> sp.csr_matrix | None:
    if f"{name}_data" not in z:
        return None
    return sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]), shape=tuple(z[f"{name}_shape"]))


def save_item_side(side: ItemSide, path: Path) -> None:
    """Write atomically (a reader never sees half a file)."""
    out: dict[str, Any] = {
        "items": np.asarray(side.items, dtype=object), "popularity": side.popularity, "pop_counts": side.pop_counts,
        "tag_vocab": np.asarray(list(side.tag_vocab), dtype=object),
    }
    _save_csr(out, "similarity", side.similarity)
    _save_csr(out, "tag_matrix", side.tag_matrix)
    _save_csr(out, "near", side.near)
    if side.vectors is not None:
        out["vectors"] = side.vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **out)
    os.replace(tmp, path)


def load_item_side(path: Path, catalog: Mapping[str, Any]) -> ItemSide:
    with np.load(path, allow_pickle=True) as z:
        items = [str(i) for i in z["items"]]
        return ItemSide(
            items, {iid: i for i, iid in enumerate(items)}, catalog, z["popularity"], z["pop_counts"],
            _load_csr(z, "similarity"), {str(t): i for i, t in enumerate(z["tag_vocab"])}, _load_csr(z, "tag_matrix"),
            z["vectors"] if "vectors" in z else None, _load_csr(z, "near"),
        )


def _load_cached(path: Path, catalog: Mapping[str, Any]) -> ItemSide | None:
    if not path.is_file():
        return None
    try:
        side = load_item_side(path, catalog)
        if side.items == sorted(catalog):
            return side
    except Exception:  # noqa: BLE001 - a cache is never worth a failure
        pass
    return None


def cached_item_side(store: EventStore, vectors: Any, cache_dir: Path | None, embedder_name: str | None = None) -> ItemSide:
    """The item side from `cache_dir` when nothing it depends on changed, else built
    (and cached). A broken or foreign cache file is rebuilt, never trusted.

    `vectors` is the VectorStore, None, or a function returning either, called only
    when the cache cannot answer alone: a side built while every catalog item had a
    vector (file `item_side-KEY-all.npz`) is found from the event store alone, so a
    one-shot `tastebud recommend` need not import chromadb. A side with items not
    indexed yet (`item_side-KEY-N.npz`, N item vectors in Chroma) is checked
    against Chroma's count, so a `tastebud index` since rebuilds it.
    `embedder_name`: the vectors' embedder (default: asked of `vectors`)."""
    resolved: list[Any] = []

    def resolve() -> Any:
        if not resolved:
            resolved.append(vectors() if callable(vectors) else vectors)
        return resolved[0]

    catalog = store.items_by_id()
    if cache_dir is None:
        return _build_item_side(store, resolve(), catalog)[0]
    if vectors is None:
        embedder_name = None  # no vectors at all: never a side that has them
    elif embedder_name is None and resolve() is not None:
        embedder_name = resolve().embedder.name
    key = item_side_fingerprint(store, catalog, embedder_name)
    cache_dir = Path(cache_dir)
    if embedder_name is not None:
        side = _load_cached(cache_dir / f"item_side-{key}-all.npz", catalog)
        if side is not None:
            return side
    partial = cache_dir / f"item_side-{key}-{'none' if resolve() is None else resolve().items.count()}.npz"
    side = _load_cached(partial, catalog)
    if side is not None:
        return side
    side, complete = _build_item_side(store, resolve(), catalog)
    path = cache_dir / f"item_side-{key}-all.npz" if complete and embedder_name is not None else partial
    try:
        save_item_side(side, path)
        for old in cache_dir.glob("item_side-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return side


def default_cache_dir(store: EventStore) -> Path | None:
    """Next to a SQLite database; None (no disk cache) for other engines or in-memory."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().resolve().parent / "cache"


def sync_item_vectors(store: EventStore, vectors: Any) -> Any:
    return vectors.sync_items(store.items_by_id().values())


class ProfileVectorSync:
    """The refresher hook that keeps profile vectors current, batched across users: new
    versions are buffered between `begin()` and `flush()` (the Refresher calls them around
    every run) and encoded `batch_users` at a time (one encode call sorts all their texts
    by length, so batches pad less). Outside a run (a wrapped hook, as the live workers
    use it) each call syncs at once. `vectors`: the VectorStore or a function
    returning it (Chroma is opened, and the model loaded, only when a flush must encode).
    `figures` says what was done: texts encoded and skipped, seconds encoding and syncing."""

    def __init__(self, vectors: Any, copy: ProfileVectorCache | None = None, batch_users: int = 1024,
                 runs_dir: Path | None = None, current_profiles: Callable[[], Iterable[Mapping[str, Any]]] | None = None):
        """runs_dir: where each buffering run leaves a marker until its flush is done;
        current_profiles: every user's current profile. A run killed between saving
        profiles and flushing their vectors leaves its marker, and the next run first
        re-syncs every current profile (unchanged texts are skipped by content hash),
        so rerunning an interrupted refresh is enough to fill the missing vectors."""
        self._vectors = vectors
        self.copy = copy
        self.batch_users = max(1, batch_users)
        self.pending: list[Mapping[str, Any]] = []
        self.buffering = False
        self.runs_dir = runs_dir
        self.current_profiles = current_profiles
        self._marker: Path | None = None
        self.figures = {"encoded": 0, "unchanged": 0, "encode_s": 0.0, "sync_s": 0.0}

    def begin(self) -> None:
        self.buffering = True
        if self.runs_dir is None:
            return
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        dead = [m for m in self.runs_dir.glob("run-*") if not _pid_alive(m.name.removeprefix("run-"))]
        if dead and self.current_profiles is not None:
            self.figures["repaired_interrupted_runs"] = len(dead)
            for profile in self.current_profiles():
                self([profile])
        for m in dead:
            m.unlink(missing_ok=True)
        self._marker = self.runs_dir / f"run-{os.getpid()}"
        self._marker.touch()

    def __call__(self, profiles: Sequence[Mapping[str, Any]]) -> None:
        self.pending.extend(profiles)
        if not self.buffering or len(self.pending) >= self.batch_users:
            self._sync()

    def flush(self) -> dict[str, Any]:
        """Sync what is buffered, stop buffering, and return the figures so far."""
        self.buffering = False
        self._sync()
        if self._marker is not None:  # this run's vectors are all stored
            self._marker.unlink(missing_ok=True)
            self._marker = None
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in self.figures.items()}
        if not callable(self._vectors) and self._vectors is not None:
            embedder = self._vectors.embedder
            out["embedder"] = embedder.name
            if getattr(embedder, "load_seconds", None) is not None:
                out["model_load_s"] = round(embedder.load_seconds, 3)
        return out

    def _sync(self) -> None:
        import time

        if self.pending:
            if callable(self._vectors):
                self._vectors = self._vectors()
            profiles, self.pending = self.pending, []
            col = self._vectors.profiles
            before, t0 = col.encode_seconds, time.perf_counter()
            report = sync_profile_vectors(self._vectors, profiles, self.copy)
            self.figures["sync_s"] += time.perf_counter() - t0
            self.figures["encode_s"] += col.encode_seconds - before
            self.figures["encoded"] += report.encoded
            self.figures["unchanged"] += report.unchanged


def _pid_alive(pid: str) -> bool:
    """Is the run that left this marker still going (on this machine)?"""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def sync_profile_vectors(vectors: Any, profiles: Sequence[Mapping[str, Any]], copy: ProfileVectorCache | None = None) -> Any:
    """Keep the profiles' vectors in Chroma current; `copy` also gets each vector encoded."""
    records = []
    for p in profiles:
        for horizon, name in (("long_term", "long"), ("short_term", "short")):
            records.append((p["user_id"], name, profile_text(p, horizon), int(p.get("version") or 0)))
    return vectors.sync_profiles(records, on_encoded=copy.put if copy is not None else None)


class RecommendationService:
    PROFILE_VECTOR_CACHE = 4096  # users whose profile vectors are kept in memory

    def __init__(self, store: EventStore, vectors: Any | None, blend: Mapping[str, float], embedder: Any = None,
                 cache_dir: Path | str | None | bool = True):
        """vectors: the VectorStore, None (no semantic parts), or a function returning
        one, called when a request first needs vectors (so `why` never opens Chroma).
        embedder: what encodes intents and profiles whose vectors are not stored
        (default: the vectors' own); a LazyEmbedder loads its model only then.
        cache_dir: where the item side is cached on disk; True = next to a SQLite
        database (see default_cache_dir), None/False = no disk cache."""
        self.store = store
        self._vectors = vectors
        self._vectors_lock = threading.Lock()
        self.blend = dict(blend)
        self._embedder = embedder
        self.repo = ProfileRepository(store)
        self.log = RecommendationLog(store)
        self.cache_dir = default_cache_dir(store) if cache_dir is True else (Path(cache_dir) if cache_dir else None)
        # profile vectors readable without chromadb (see tastebud.retrieval.profile_vector_cache)
        self.profile_copy = ProfileVectorCache(self.cache_dir / PROFILE_COPY_FILE) if self.cache_dir else None
        self._side: ItemSide | None = None
        self._recommender: Recommender | None = None
        self._lock = threading.Lock()
        self._profile_vectors: OrderedDict[str, tuple[int, dict[str, np.ndarray]]] = OrderedDict()

    @property
    def vectors(self) -> Any | None:
        with self._vectors_lock:
            if callable(self._vectors):
                self._vectors = self._vectors()
            return self._vectors

    @property
    def embedder(self) -> Any:
        return self._embedder or (self.vectors.embedder if self.vectors is not None else None)

    def _embedder_name(self) -> str | None:
        """The name of the embedder the vectors come from, without opening Chroma
        when an embedder was given (a LazyEmbedder knows its name unloaded)."""
        if self._vectors is None:
            return None
        embedder = self._embedder or self.vectors.embedder
        return embedder.name if embedder is not None else None

    def _item_side(self) -> ItemSide:
        """Opens Chroma only when the cached item side cannot answer alone (see cached_item_side)."""
        return cached_item_side(self.store, None if self._vectors is None else (lambda: self.vectors), self.cache_dir,
                                self._embedder_name())

    @property
    def side(self) -> ItemSide:
        with self._lock:
            if self._side is None:
                self._side = self._item_side()
                self._recommender = None
            return self._side

    @property
    def recommender(self) -> Recommender:
        side = self.side
        with self._lock:
            if self._recommender is None or self._recommender.side is not side:
                self._recommender = Recommender(side, self.blend)
            return self._recommender

    def refresh_side(self) -> ItemSide:
        """Rebuild the item side (new events, new items) without holding the lock,
        then swap it in: requests meanwhile keep the old one instead of waiting
        for a build. Profile vectors stay cached (they do not depend on it)."""
        side = self._item_side()
        with self._lock:
            self._side = side
            self._recommender = None
        return side

    def invalidate(self) -> None:
        """Forget the item side (new events or items); the next request rebuilds or reloads it."""
        with self._lock:
            self._side = None
            self._recommender = None
            self._profile_vectors.clear()

    def drop_user(self, user_id: str) -> None:
        """Forget a user's vectors held in memory (after a forget: a new profile of
        the same id starts again at version 1 and must not meet the old vectors)."""
        with self._lock:
            self._profile_vectors.pop(user_id, None)

    def _remember(self, user_id: str, version: int, vecs: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._profile_vectors[user_id] = (version, vecs)
            if len(self._profile_vectors) > self.PROFILE_VECTOR_CACHE:
                self._profile_vectors.popitem(last=False)

    def _vectors_for(self, user_id: str, profile: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The user's profile vectors for this profile version: memory, else the
        local copy (vectors of exactly this version's texts, no chromadb import),
        else Chroma, else encoded on the fly (not synced yet). Only vectors that
        Chroma holds for exactly this version are remembered (and copied)."""
        version = int(profile.get("version") or 0)
        with self._lock:
            hit = self._profile_vectors.get(user_id)
            if hit is not None and hit[0] == version:
                self._profile_vectors.move_to_end(user_id)
                return hit[1]
        ids = [f"{user_id}:{h}" for h in ("long", "short")]
        wanted: dict[str, str] = {}
        name = self._embedder_name() if self.profile_copy is not None else None
        if name is not None:
            wanted = {rid: vector_content_hash(profile_text(profile, horizon), name)
                      for rid, horizon in zip(ids, ("long_term", "short_term"))}
            copied = self.profile_copy.get(wanted)
            if len(copied) == 2:
                vecs = {rid.rsplit(":", 1)[1]: vec for rid, vec in copied.items()}
                self._remember(user_id, version, vecs)
                return vecs
        if self.vectors is None:
            return {}
        col = self.vectors.profiles
        got = col._call("get", col.collection.get, ids=ids, include=["embeddings", "metadatas"])
        vecs: dict[str, np.ndarray] = {}
        current = True
        for rid, vec, meta in zip(got["ids"], got["embeddings"], got["metadatas"]):
            vecs[rid.rsplit(":", 1)[1]] = np.asarray(vec, dtype=np.float32)
            current &= int((meta or {}).get("version", -1)) == version
        if len(vecs) == 2 and current:
            self._remember(user_id, version, vecs)
            if wanted:  # copy what matches this version's texts, for the next process
                fresh = [(rid, (meta or {}).get("content_hash"), vec)
                         for rid, vec, meta in zip(got["ids"], got["embeddings"], got["metadatas"])
                         if (meta or {}).get("content_hash") == wanted.get(rid)]
                if fresh:
                    self.profile_copy.put(*zip(*fresh))
        elif self.embedder is not None:  # missing or from an older version: encode this version's texts
            encoded = self.embedder.encode([profile_text(profile, "long_term"), profile_text(profile, "short_term")])
            vecs = {"long": encoded[0], "short": encoded[1]}
        return vecs

    def context(self, user_id: str, intent: str | None = None, seeds: Sequence[str] = ()) -> UserContext:
        from tastebud.profiles.optout import is_opted_out

        events = self.store.events_for_user(user_id)
        if is_opted_out(self.store, user_id):  # no profile, no vectors: popularity minus what they have seen
            return UserContext(user_id, events, None, {}, intent, None, tuple(seeds), opted_out=True)
        profile = self.repo.latest(user_id)
        if events and profile is None:
            raise NotFoundError(f"user {user_id!r} has no profile yet", hint=f"run: tastebud refresh --user {user_id}")
        vecs: dict[str, np.ndarray] = {}
        if profile is not None and self._vectors is not None:
            vecs = self._vectors_for(user_id, profile)
        intent_vec = self.embedder.encode([intent])[0] if intent and self.embedder is not None else None
        return UserContext(user_id, events, profile, vecs, intent, intent_vec, tuple(seeds))

    def recommend(
        self, user_id: str, k: int = 10, category: str | None = None, exclude: Sequence[str] = (),
        intent: str | None = None, diversify: float | None = None, source: str = "cli", seeds: Sequence[str] = (),
    ) -> Recommendation:
        """`seeds`: item ids the list should be like ("something like X")."""
        if k < 1 or k > 100:
            raise InputError("k must be between 1 and 100")
        for seed in seeds:
            self.store.get_item(seed)  # NotFoundError for an unknown item
        intent = pii.mask(intent) if intent else intent  # it is encoded and logged (tastebud/pii.py)
        ctx = self.context(user_id, intent, seeds)
        items = self.recommender.recommend(ctx, k, category, exclude, diversify)
        rec = Recommendation(
            request_id=RecommendationLog.new_request_id(), user_id=user_id, created_at=RecommendationLog.now_ms(),
            profile_version=(ctx.profile or {}).get("version"),
            params={"k": k, "category": category, "exclude": list(exclude), "intent": intent, "diversify": diversify,
                    **({"seeds": list(seeds)} if seeds else {})},
            items=items, source=source,
        )
        self.log.record(rec)
        return rec

    def why(self, user_id: str, item_id: str, request_id: str | None = None) -> dict[str, Any]:
        return self.log.explain(user_id, item_id, request_id)

