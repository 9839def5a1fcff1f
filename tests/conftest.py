"""Shared fixtures: every test gets its own TASTEBUD_HOME in a temp dir and
real SQLite; the embedding model and the embedded LLM are loaded once per session."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
ML_SMALL = ROOT / "examples" / "ml-latest-small"


@pytest.fixture(autouse=True)
def _thawed_after_each_test():
    """A test that starts the API's services freezes the heap and shortens the switch
    interval as a server worker does (api/services.py); this process is not a server,
    so both are handed back afterwards."""
    switch_interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(switch_interval)
    gc.callbacks[:] = [cb for cb in gc.callbacks if getattr(cb, "__name__", "") != "_freeze_survivors"]
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)  # as tastebud makes one (tastebud/home.py); a looser one gets a "tightened" line
    monkeypatch.setenv("TASTEBUD_HOME", str(path))
    for key in list(os.environ):
        if key.startswith("TASTEBUD_") and key != "TASTEBUD_HOME":
            monkeypatch.delenv(key)
    return path


@pytest.fixture
def settings(home):
    from tastebud.settings import load_settings

    return load_settings()


@pytest.fixture
def store(settings):
    from tastebud.profiles.store import EventStore

    s = EventStore.from_settings(settings)
    yield s
    s.close()


@pytest.fixture
def app(home, tmp_path_factory, embedder):
    """A small built home (ml-small slice, injection item, near-duplicate twins), copied per test."""
    from tests.agent_helpers import built_home, copy_home, make_app

    copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)
    a = make_app(home, embedder)
    yield a
    a.close()


@pytest.fixture
def ml_small() -> Path:
    return ML_SMALL


@pytest.fixture(scope="session")
def embedder():
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    from tastebud.retrieval.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


class CountingEmbedder:
    """Wraps a real embedder and records every text it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.calls: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture
def counting_embedder(embedder):
    return CountingEmbedder(embedder)


# --- embedded LLM (tests marked `llm`) -------------------------------------------------
# The 491 MB GGUF is assembled once into pytest's cache dir (.pytest_cache/d/tastebud-models,
# kept across sessions and re-verified only through its size+mtime stamp); one llama-cpp
# server serves every test of the session. Tests that need the model in an App use
# `llm_app`; the LLM they get is the session's, and closing the App does not stop it.


@pytest.fixture(scope="session")
def llm_models_dir(request, tmp_path_factory) -> Path:
    pytest.importorskip("llama_cpp", reason="needs the embedded extra: pip install 'tastebud[embedded]'")
    from tastebud.embedded import ensure_model

    # pytest's cache keeps the 491 MB model between runs; without it, assemble once per session
    cache = getattr(request.config, "cache", None)
    path = cache.mkdir("tastebud-models") if cache is not None else tmp_path_factory.mktemp("tastebud-models")
    ensure_model(path)
    return path


@pytest.fixture(scope="session")
def embedded_server(llm_models_dir):
    from tastebud.embedded import MODEL_FILENAME, EmbeddedServer
    from tastebud.settings import Settings

    defaults = Settings.model_fields
    server = EmbeddedServer(
        llm_models_dir / MODEL_FILENAME,
        alias=defaults["llm_model"].default,
        n_ctx=defaults["llm_context"].default,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def attach_embedded(embedded_server, llm_models_dir):
    """attach(home): a tastebud process started on this home reuses the session's
    embedded server (a recorded detached server, see tastebud/embedded/registry.py) instead
    of loading the model again."""
    import json

    from tastebud.embedded import MODEL_FILENAME, MODEL_SHA256, STATE_FILENAME

    def attach(home: Path) -> Path:
        (home / "models").symlink_to(llm_models_dir, target_is_directory=True)
        (home / STATE_FILENAME).write_text(json.dumps({
            "pid": embedded_server.pid, "base_url": embedded_server.base_url, "api_key": embedded_server.api_key,
            "model_path": str(llm_models_dir / MODEL_FILENAME), "sha256": MODEL_SHA256, "alias": embedded_server.alias,
        }))
        return home

    return attach


@pytest.fixture(scope="session")
def embedded_llm(embedded_server):
    """An `embedded`-backend LLM over the session's server (not owned: close() keeps it)."""
    from tastebud.llm import Endpoint, connect

    endpoint = Endpoint(embedded_server.base_url, embedded_server.alias, embedded_server.api_key,
                        max_retries=0, concurrency=1)
    return connect(endpoint, "embedded", timeout=120.0)


@pytest.fixture
def llm_app(settings, embedded_llm):
    from tastebud.app import App

    app = App(settings, llm=embedded_llm)
    yield app
    app.close()
