"""Shared fixtures: every test gets its own TASTEBUD_HOME in a temp dir and
real SQLite; the embedding model and the embedded LLM are loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
ML_SMALL = ROOT / "examples" / "ml-latest-small"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
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
    from profiles.store import EventStore

    s = EventStore.from_settings(settings)
    yield s
    s.close()


@pytest.fixture
def ml_small() -> Path:
    return ML_SMALL
