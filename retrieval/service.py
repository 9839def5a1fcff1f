"""Recommendations as a service: profile + vectors + item side + log, and the
deterministic "why" rendering support staff and the agent rely on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tastebud import pii
from tastebud.profiles.store import EventStore, default_cache_dir
from tastebud.profiles.versions import ProfileRepository
from tastebud.retrieval.profile_vectors import vectors_from_matrix
from tastebud.retrieval.reclog import Recommendation, RecommendationLog
from tastebud.retrieval.same_start import StartTracker
from tastebud.retrieval.recommender import (INTERACTION_COLUMNS, RECOMMENDER_PARAMS, ItemSide, Recommender, UserContext,
                                            interaction_matrix_from_rows)
from tastebud.errors import InputError, NotFoundError
from tastebud.retrieval.why import CATEGORY_ZH, EVENT_TYPE_ZH, render_why, render_why_zh, tag_zh  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


ITEM_SIDE_FORMAT = 3  # bump when ItemSide's contents or their computation change
_PUBLISHED_FORMAT = f"{ITEM_SIDE_FORMAT}|{RECOMMENDER_PARAMS}"  # what a published side must match to be adopted


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


def _build_item_side(store: EventStore, vectors: Any | None, catalog: Mapping[str, Any],
                     previous: ItemSide | None = None) -> tuple[ItemSide, bool]:
    """(the item side, whether every catalog item had a vector); previous: see
    ItemSide.build. An item's vector is a function of its text and the model (see
    item_side_fingerprint), so while the catalog is what `previous` was built from,
    its vectors are taken as they are and Chroma is not read: the read of every item's
    vector (0.8 s of a 6.5 s build) also held the live process's vector writes back."""
    items = sorted(catalog)
    index = {iid: i for i, iid in enumerate(items)}
    digest = _catalog_digest(catalog)
    if (previous is not None and previous.catalog_digest == digest and previous.vectors_found == len(items)
            and list(previous.items) == items):  # every item had a vector: an index since cannot add one
        vecs, found = previous.vectors, previous.vectors_found
    else:
        vecs, found = _item_vectors_found(vectors, items)
    starts = StartTracker()
    interactions = interaction_matrix_from_rows(store.event_field_chunks(*INTERACTION_COLUMNS), index, starts)  # streamed
    side = ItemSide.build(items, catalog, interactions, vecs, previous=previous, starts=starts.matrix(*interactions.shape))
    side.catalog_digest, side.vectors_found = digest, found
    return side, bool(items) and found == len(items)


def build_item_side(store: EventStore, vectors: Any | None, catalog: Mapping[str, Any] | None = None) -> ItemSide:
    """Item-side state from the whole event store and the item vectors in Chroma."""
    return _build_item_side(store, vectors, catalog if catalog is not None else store.items_by_id())[0]


def item_side_fingerprint(store: EventStore, catalog: Mapping[str, Any] | None, embedder_name: str | None) -> str:
    """What an item side with a vector for every catalog item is a function of:
    every event (append-only, so the max seq and the count), the catalog's texts,
    and the embedder that made the vectors (an item's vector is a function of its
    text and the model, so Chroma need not be asked). A side with items not
    indexed yet also depends on how many item vectors exist: cached_item_side adds that.
    `catalog`: a LazyCatalog (its digest of the raw rows: no Item is built), any
    other mapping of Items, or None (the store's catalog, read raw)."""
    from sqlalchemy import func, select

    from tastebud.profiles.catalog import read_catalog
    from tastebud.profiles.migrations import events

    if catalog is None:
        catalog = read_catalog(store)
    digest = _catalog_digest(catalog)
    with store.engine.connect() as conn:
        max_seq, n_events = conn.execute(select(func.max(events.c.seq), func.count())).one()
    h = hashlib.sha256()
    h.update(f"{ITEM_SIDE_FORMAT}|{RECOMMENDER_PARAMS}|{max_seq}|{n_events}|{digest}|{embedder_name or '-'}".encode())
    return h.hexdigest()[:24]


def _catalog_digest(catalog: Mapping[str, Any]) -> str:
    """A LazyCatalog's digest of its raw rows (no Item built), or the same of Items."""
    from tastebud.profiles.catalog import LazyCatalog, items_digest

    return catalog.digest() if isinstance(catalog, LazyCatalog) else items_digest(catalog)


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
    _save_csr(out, "same_start", side.same_start)
    if side.started is not None:
        out["started"] = side.started
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
            same_start=_load_csr(z, "same_start"), started=z["started"] if "started" in z else None,
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


def cached_item_side(store: EventStore, vectors: Any, cache_dir: Path | None, embedder_name: str | None = None,
                     previous: ItemSide | None = None) -> ItemSide:
    """The item side from `cache_dir` when nothing it depends on changed, else built
    (and cached). A broken or foreign cache file is rebuilt, never trusted.

    `vectors` is the VectorStore, None, or a function returning either, called only
    when the cache cannot answer alone: a side built while every catalog item had a
    vector (file `item_side-KEY-all.npz`) is found from the event store alone, so a
    one-shot `tastebud recommend` need not import chromadb. A side with items not
    indexed yet (`item_side-KEY-N.npz`, N item vectors in Chroma) is checked
    against Chroma's count, so a `tastebud index` since rebuilds it.
    `embedder_name`: the vectors' embedder (default: asked of `vectors`);
    `previous`: the side a rebuild replaces (see ItemSide.build)."""
    resolved: list[Any] = []

    def resolve() -> Any:
        if not resolved:
            resolved.append(vectors() if callable(vectors) else vectors)
        return resolved[0]

    from tastebud.profiles.catalog import read_catalog

    catalog = read_catalog(store)  # Items are made only when asked for (titles of the results, a category mask)
    if cache_dir is None:
        return _build_item_side(store, resolve(), catalog, previous)[0]
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
    side, complete = _build_item_side(store, resolve(), catalog, previous)
    path = cache_dir / f"item_side-{key}-all.npz" if complete and embedder_name is not None else partial
    try:
        save_item_side(side, path)
        for old in cache_dir.glob("item_side-*.npz"):
            if old != path and not old.name.startswith(RecommendationService.PUBLISHED):  # the live process's
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return side


def sync_item_vectors(store: EventStore, vectors: Any) -> Any:
    return vectors.sync_items(store.items_by_id().values())


class RecommendationService:
    def __init__(self, store: EventStore, vectors: Any | None, blend: Mapping[str, float], embedder: Any = None,
                 cache_dir: Path | str | None | bool = True, ranker: Path | str | None = None):
        """vectors: the VectorStore, None (no semantic parts), or a function returning
        one, called when a request first needs vectors (so `why` never opens Chroma).
        embedder: what encodes intents (default: the vectors' own); a LazyEmbedder
        loads its model only then. Profile vectors are never encoded: they are
        derived from the item side's vectors (retrieval/profile_vectors.py).
        cache_dir: where the item side is cached on disk; True = next to a SQLite
        database (see default_cache_dir), None/False = no disk cache.
        ranker: a folder holding a trained ranker (retrieval/ranker.py), used when
        the model is there; otherwise (or None) the blend ranks, as before."""
        self.ranker_dir = Path(ranker) if ranker else None
        self._ranker_model: Any = None  # loaded once (lightgbm imported only then)
        self.store = store
        self._vectors = vectors
        self._vectors_lock = threading.Lock()
        self.blend = dict(blend)
        self._embedder = embedder
        self.repo = ProfileRepository(store)
        self.log = RecommendationLog(store)
        self.cache_dir = default_cache_dir(store) if cache_dir is True else (Path(cache_dir) if cache_dir else None)
        self._side: ItemSide | None = None
        self._recommender: Recommender | None = None
        self._lock = threading.Lock()

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

    def _item_side(self, previous: ItemSide | None = None) -> ItemSide:
        """Opens Chroma only when the cached item side cannot answer alone (see cached_item_side)."""
        return cached_item_side(self.store, None if self._vectors is None else (lambda: self.vectors), self.cache_dir,
                                self._embedder_name(), previous)

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
                self._recommender = self._ranked(Recommender(side, self.blend))
            return self._recommender

    def _ranked(self, base: Recommender) -> Any:
        """The blend, re-ranked by the trained model when one is present (caller holds the lock)."""
        from tastebud.retrieval.ranker import RankedRecommender, RankerModel, StaleRanker

        if self.ranker_dir is None or not RankerModel.present(self.ranker_dir):
            return base
        if self._ranker_model is None:
            try:
                self._ranker_model = RankerModel.load(self.ranker_dir)
            except StaleRanker as exc:  # an upgraded home: serve, and say once what to do
                logger.warning("%s", exc)
                self.ranker_dir = None
                return base
        return RankedRecommender(base, self._ranker_model)

    def refresh_side(self) -> ItemSide:
        """Rebuild the item side (new events, new items) without holding the lock,
        then swap it in: requests meanwhile keep the old one instead of waiting
        for a build. What the new events cannot change is taken from the side it
        replaces, or else from the one last published (the build process's case)."""
        with self._lock:
            previous = self._side
        if previous is None:
            previous = self._published()
        side = self._item_side(previous)
        with self._lock:
            self._side = side
            self._recommender = None
        return side

    PUBLISHED = "item_side-published"

    def publish_side(self, seq: int) -> bool:
        """Leave the current side for the other processes on this home (the live
        process builds it, the workers load it: a load takes 0.03 s where a build took
        5 s idle, 15-18 s under load, in every worker). False without a disk cache."""
        if self.cache_dir is None:
            return False
        save_item_side(self.side, self.cache_dir / f"{self.PUBLISHED}.npz")
        pointer = self.cache_dir / f"{self.PUBLISHED}.json"  # written after the file it points at
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": int(seq), "format": _PUBLISHED_FORMAT}))
        os.replace(tmp, pointer)
        return True

    def _published(self) -> ItemSide | None:
        if self.cache_dir is None:
            return None
        from tastebud.profiles.catalog import read_catalog

        return _load_cached(self.cache_dir / f"{self.PUBLISHED}.npz", read_catalog(self.store))

    def adopt_published(self, newer_than: int) -> int | None:
        """Swap in the side another process published, if it was built from events past
        seq `newer_than`; returns that seq (None: nothing newer, or it does not fit the catalog)."""
        if self.cache_dir is None:
            return None
        try:
            pointer = json.loads((self.cache_dir / f"{self.PUBLISHED}.json").read_text())
            seq = int(pointer["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if seq <= newer_than or pointer.get("format") != _PUBLISHED_FORMAT:  # another version's side: keep ours
            return None
        side = self._published()
        if side is None:
            return None
        with self._lock:
            self._side = side
            self._recommender = None
        return seq

    def invalidate(self) -> None:
        """Forget the item side (new events or items); the next request rebuilds or reloads it."""
        with self._lock:
            self._side = None
            self._recommender = None

    def _vectors_for(self, profile: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The profile's vectors, derived from the item side's vectors exactly as
        they are stored in Chroma (retrieval/profile_vectors.py): no Chroma read, no model."""
        side = self.side
        return vectors_from_matrix(profile, side.index, side.vectors)

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
            vecs = self._vectors_for(profile)
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

