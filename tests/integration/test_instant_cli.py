"""Instant CLI (issue 13, item 3): the commands that only read (`why`, `profile
show`, `recommend` without `--intent` when profile vectors are stored, `status`,
`quarantine list`), run as real processes on a small built home, import neither
torch nor the embedding model, and once the item side is cached not even chromadb;
and they answer exactly what the full path answers (the model loaded, the item
side built from Chroma; profile vectors are derived from item vectors on both).
A command that must encode (an intent) still loads the model.
Timings are in bench/cli_latency.py, not here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.agent_helpers import built_home, copy_home

pytestmark = pytest.mark.integration

MODEL = ("torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers")  # any embedding backend
USER = "1"
# Runs the `tastebud` console script's own entry point, then writes which top-level
# packages the process ended up importing (any time, any thread) to the file in argv[1].
PROBE = r"""
import json, sys
out, sys.argv = sys.argv[1], ["tastebud", *sys.argv[2:]]
code = 0
try:
    from tastebud.cli.main import run
    code = run() or 0
except SystemExit as exc:
    code = exc.code or 0
finally:
    with open(out, "w") as fh:
        json.dump({"exit": code, "imported": sorted({m.split(".")[0] for m in list(sys.modules)})}, fh)
"""


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(TASTEBUD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


class Run:
    def __init__(self, stdout: str, exit: int, imported: list[str]):
        self.stdout, self.exit, self.imported = stdout, exit, set(imported)

    def json(self):
        return json.loads(self.stdout)

    @property
    def model_loaded(self) -> bool:
        return bool(self.imported & set(MODEL))


def tastebud(home: Path, tmp_path: Path, *args: str) -> Run:
    """One real `tastebud ARGS` process on `home`."""
    import subprocess

    out = tmp_path / f"probe-{os.urandom(4).hex()}.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], env=env_for(home), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and out.is_file(), (args, done.stdout[-2000:], done.stderr[-2000:])
    probe = json.loads(out.read_text())
    assert probe["exit"] == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return Run(done.stdout, probe["exit"], probe["imported"])


@pytest.fixture
def instant_home(home, tmp_path_factory, embedder) -> Path:
    """The agent tests' small home (a slice of ml-latest-small, refreshed without
    narratives through App.refresher, items indexed), copied to this test's home."""
    return copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)


@pytest.fixture
def full_path(instant_home, embedder):
    """The answers of the path that loads everything: the real model, the item side
    built from Chroma (no disk cache)."""
    from tastebud.profiles.store import EventStore
    from tastebud.retrieval.service import RecommendationService
    from tastebud.retrieval.vectors import VectorStore
    from tastebud.settings import load_settings

    settings = load_settings(home=instant_home)
    store = EventStore.from_settings(settings)
    vectors = VectorStore.from_settings(settings, embedder)
    yield RecommendationService(store, vectors, settings.blend, embedder, cache_dir=None)
    store.close()


def as_printed(data):
    """What `--json` prints for `data` (cli.render.print_json)."""
    return json.loads(json.dumps(data, ensure_ascii=False, default=str))


def without_request(rec: dict) -> dict:
    return {k: v for k, v in as_printed(rec).items() if k not in ("request_id", "created_at")}


def test_read_commands_import_neither_torch_nor_the_model(instant_home, full_path, tmp_path):
    run = lambda *args: tastebud(instant_home, tmp_path, *args)  # noqa: E731

    # Chroma holds each profile's vectors, as the refresh stored them
    assert set(full_path.vectors.profile_vectors(USER)) == {"long", "short"}

    # The first recommend after `index` builds the item side from Chroma's item
    # vectors (and caches it); profile vectors are derived from those item vectors.
    first = run("recommend", USER, "-k", "10", "--explain", "--json")
    assert not first.model_loaded, sorted(first.imported & set(MODEL))
    # From then on, nothing of Chroma either.
    rec = run("recommend", USER, "-k", "10", "--explain", "--json")
    assert not rec.model_loaded, sorted(rec.imported & set(MODEL))
    assert "chromadb" not in rec.imported

    # ...and the same list as the full path, to the last evidence figure
    expected = full_path.recommend(USER, 10).as_dict(evidence=True)
    assert rec.json()["items"], "user 1 gets recommendations"
    assert without_request(rec.json()) == without_request(first.json()) == without_request(expected)

    top = rec.json()["items"][0]
    why = run("why", USER, top["item_id"], "--request", rec.json()["request_id"], "--json")
    profile = run("profile", "show", USER, "--json")
    status = run("status", "--json")
    quarantine = run("quarantine", "list", "--json")
    for name, done in (("why", why), ("profile show", profile), ("status", status), ("quarantine list", quarantine)):
        assert not done.model_loaded, (name, sorted(done.imported & set(MODEL)))
        assert "chromadb" not in done.imported, name

    assert why.json() == as_printed({**full_path.why(USER, top["item_id"], rec.json()["request_id"]), "recommended": True})
    logged = why.json()  # what was served, as served (the log keeps full precision; the list printed 6 decimals)
    assert (logged["request_id"], logged["item_id"], logged["title"], logged["rank"]) == \
        (rec.json()["request_id"], top["item_id"], top["title"], 1)
    assert round(logged["score"], 6) == top["score"] and logged["evidence"] == top["evidence"]
    assert {part: round(v, 6) for part, v in logged["parts"].items()} == top["parts"]
    assert logged["sentences"] and all(isinstance(s, str) and s for s in logged["sentences"])
    assert profile.json() == as_printed(full_path.repo.require_latest(USER))
    assert status.json() == as_printed({**full_path.store.status(), "ranker": {"state": "none"}})
    assert quarantine.json() == as_printed([{k: r[k] for k in ("id", "kind", "source", "line_no", "reason", "raw")}
                                            for r in full_path.store.open_quarantine(limit=50)])


def test_the_model_loads_when_something_must_be_encoded(instant_home, full_path, tmp_path):
    run = lambda *args: tastebud(instant_home, tmp_path, *args)  # noqa: E731

    # an intent is free text: it must be encoded (the probe does see the model when it loads)
    # on the default onnx backend, without importing torch (issue 13 part 2)
    intent = run("recommend", USER, "-k", "5", "--intent", "a heist gone wrong", "--json")
    assert intent.model_loaded and "onnxruntime" in intent.imported and "torch" not in intent.imported
    expected = without_request(full_path.recommend(USER, 5, intent="a heist gone wrong").as_dict())
    got = without_request(intent.json())
    # the full path encodes with torch: the same list, scores equal up to float noise
    assert [it["item_id"] for it in got.pop("items")] == [it["item_id"] for it in expected["items"]]
    assert [it["score"] for it in intent.json()["items"]] == pytest.approx([it["score"] for it in expected.pop("items")], abs=1e-5)
    assert got == expected

    # profile vectors are derived from item vectors, never read: with Chroma's profile
    # vectors gone the list is the same, and no model loads
    stored = full_path.recommend(USER, 10).as_dict()
    full_path.vectors.delete_profile_vectors([f"{USER}:long", f"{USER}:short"])
    missing = run("recommend", USER, "-k", "10", "--json")
    assert not missing.model_loaded
    got = missing.json()["items"]
    assert [it["item_id"] for it in got] == [it["item_id"] for it in stored["items"]]
    assert [it["score"] for it in got] == pytest.approx([it["score"] for it in stored["items"]], abs=1e-6)
