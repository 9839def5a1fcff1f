"""`tastebud eval movielens` end to end: a tiny synthetic MovieLens directory
(fast), and ml-latest-small under the protocol of docs/design.md#evaluation-protocol (slow)."""

from __future__ import annotations

import csv
import json
import tomllib

import pytest

METRICS = {"recall@10", "ndcg@10", "hr@10", "mrr@10", "coverage@10"}
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def write_movielens(path, users: int = 24, movies: int = 40) -> None:
    """Taste groups by genre, a few cross-overs; every user has a test tail rated >= 4."""
    path.mkdir()
    with open(path / "movies.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        for m in range(1, movies + 1):
            w.writerow([m, f"Movie {m} ({1980 + m})", f"{GENRES[m % 6]}|{GENRES[(m * 7) % 6]}"])
    with open(path / "ratings.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        for u in range(1, users + 1):
            group = u % 3
            liked = [m for m in range(1, movies + 1) if m % 3 == group][:10]
            other = [m for m in range(1, movies + 1) if m % 3 != group][u % 5 : u % 5 + 3]
            ts = 1_000_000_000 + u * 10_000
            rows = [(m, 4.0 + (n + u) % 3 * 0.5) for n, m in enumerate(liked)]
            rows[6:6] = [(m, 1.5 + n) for n, m in enumerate(other)]  # the last 20% are liked: relevant
            for n, (m, value) in enumerate(rows):
                w.writerow([u, m, value, ts + n * 60])
    with open(path / "tags.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "tag", "timestamp"])
        for m in range(1, movies + 1, 4):
            w.writerow([1, m, "cult classic" if m % 8 == 1 else "slow", 1_000_000_500])


@pytest.fixture
def cli(home, embedder, monkeypatch):
    from typer.testing import CliRunner

    from tastebud.cli.main import State, _register, app

    monkeypatch.setattr(State, "parts", {"embedder": embedder})  # injected into the App, not patched
    _register()
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    yield invoke
    if State._app is not None:
        State._app.close()
        State._app = None


def check_shape(out: dict) -> None:
    assert METRICS <= set(out["tastebud"])
    assert set(out["baselines"]) == {"pop", "itemknn", "ease"}
    for metrics in out["baselines"].values():
        assert METRICS <= set(metrics)
    assert set(out["ablations"]) == {"long_term_only", "short_term_only", "no_semantic", "no_co_occurrence"}
    for metrics in [out["tastebud"], *out["baselines"].values(), *out["ablations"].values()]:
        assert all(0.0 <= metrics[m] <= 1.0 for m in METRICS)
        assert metrics["recall@10"] <= metrics["hr@10"]
    assert out["narratives"].startswith("not used")


def test_eval_on_a_tiny_movielens_directory_with_fit(tmp_path, home, cli):
    data = tmp_path / "ml-tiny"
    write_movielens(data)
    out = json.loads(cli("eval", "movielens", str(data), "--fit", "--json").stdout)
    check_shape(out)
    assert out["protocol"]["users"] == 24 and out["protocol"]["eval_users"] > 0
    # The tiny world is built so taste is learnable (see write_movielens): the fitted
    # blend must rank better than popularity alone, in this very run.
    assert out["tastebud"]["ndcg@10"] > out["baselines"]["pop"]["ndcg@10"], out
    # the fitted weights are written into the home's settings and used from then on
    written = tomllib.loads((home / "tastebud.toml").read_text())["blend"]
    assert written == pytest.approx(out["fitted_blend"]) and out["blend"] == out["fitted_blend"]
    from tastebud.settings import load_settings

    assert load_settings().blend == pytest.approx(out["fitted_blend"])


@pytest.mark.slow
def test_eval_on_ml_latest_small_beats_pop_and_itemknn(ml_small, cli):
    out = json.loads(cli("eval", "movielens", str(ml_small), "--json").stdout)
    check_shape(out)
    assert out["protocol"]["eval_users"] == 592
    ndcg = out["tastebud"]["ndcg@10"]
    assert ndcg > out["baselines"]["pop"]["ndcg@10"]
    assert ndcg > out["baselines"]["itemknn"]["ndcg@10"]
    # the baselines agree with the reference (docs/design.md#reference-baselines) within noise
    assert out["baselines"]["pop"]["ndcg@10"] == pytest.approx(0.0751, abs=0.003)
    assert out["baselines"]["itemknn"]["ndcg@10"] == pytest.approx(0.0772, abs=0.003)
    assert out["baselines"]["ease"]["ndcg@10"] == pytest.approx(0.1023, abs=0.003)


def write_events_and_catalog(path, users: int = 30, items: int = 40):
    """The same taste groups as write_movielens, as a generic events CSV (ISO timestamps)
    and a JSONL catalog: the formats `tastebud ingest events/catalog` read."""
    path.mkdir()
    with open(path / "catalog.jsonl", "w") as fh:
        for m in range(1, items + 1):
            fh.write(json.dumps({"item_id": f"i{m}", "title": f"Item {m}",
                                 "categories": [GENRES[m % 6], GENRES[(m * 7) % 6]]}) + "\n")
    with open(path / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "type", "timestamp", "value"])
        for u in range(1, users + 1):
            group = u % 3
            liked = [m for m in range(1, items + 1) if m % 3 == group][:10]
            for n, m in enumerate(liked):
                kind = "rating" if n % 2 else "purchase"
                w.writerow([f"user{u}", f"i{m}", kind, f"2024-01-{1 + u % 28:02d}T{n:02d}:00:00Z",
                            4.5 if kind == "rating" else ""])
            w.writerow([f"user{u}", f"i{(u % 40) + 1}", "view", f"2024-01-{1 + u % 28:02d}T00:30:00Z", ""])


def test_eval_events_file_with_catalog_records_its_protocol(tmp_path, home, cli):
    data = tmp_path / "generic"
    write_events_and_catalog(data)
    out_file = tmp_path / "eval.json"
    out = json.loads(cli("eval", "events", str(data / "events.csv"), "--catalog", str(data / "catalog.jsonl"),
                         "--protocol", "all", "--resamples", "200", "--sample-users", "10", "--json",
                         "--output", str(out_file)).stdout)
    assert json.loads(out_file.read_text()) == out
    check_shape(out)
    protocol = out["protocol"]
    assert protocol["users"] == 30 and protocol["items"] == 40 and protocol["eval_users"] > 0
    assert set(protocol["data_sha256"]) == {str(data / "events.csv"), str(data / "catalog.jsonl")}
    assert all(len(h) == 64 for h in protocol["data_sha256"].values())
    assert protocol["seeds"] == {"bootstrap": 20260115, "cold_protocols": 0}
    assert protocol["bootstrap"]["resamples"] == 200 and protocol["tastebud_version"]
    assert protocol["models"]["ease"]["lam"] == 500.0 and protocol["models"]["tastebud"]["blend"] == out["blend"]
    assert protocol["protocols"] == ["warm", "cold-items", "cold-users"] and "floor(0.8*n)" in protocol["split_rule"]
    # the learned ranker is trained on a validation split of the training data, or says why not
    ranker = protocol["models"]["ranker"]
    assert "skipped" in ranker or ("validation_split" in ranker["rule"] and "ranker" in out), ranker
    # every metric carries its interval, and the interval holds the point estimate
    for metrics in [out["tastebud"], *out["baselines"].values(), *out["ablations"].values()]:
        assert metrics["ci95"]["coverage@10"] is None  # not a mean over users: no user bootstrap
        for m in METRICS - {"coverage@10"}:
            low, high = metrics["ci95"][m]
            assert low - 1e-9 <= metrics[m] <= high + 1e-9, (m, metrics)
    d = out["comparisons"]["tastebud - ease"]["ndcg@10"]
    assert d["low"] <= d["mean"] <= d["high"] and d["mean"] == pytest.approx(
        out["tastebud"]["ndcg@10"] - out["baselines"]["ease"]["ndcg@10"], abs=2e-4)
    cold = out["cold_items"]
    assert cold["protocol"]["held_out_items"] >= 1 and cold["protocol"]["seed"] == 0
    assert {"pop", "itemknn", "ease", "tastebud", "tastebud no_semantic", "tastebud content only"} <= set(cold["models"])
    assert set(cold["among_held_out"]["models"]) == set(cold["models"])
    # popularity and co-occurrence never saw a held-out item: they cannot recommend one
    for name in ("pop", "itemknn", "ease"):
        assert cold["models"][name]["hr@10"] == 0.0
    users = out["cold_users"]
    assert users["protocol"]["sample"] == 10 and len(users["protocol"]["sample_users"]) == 10
    assert list(users["levels"]) == ["first 1", "first 3", "first 5", "stated only", "full train"]
    for level in users["levels"].values():
        # the ranker too when it was trained (the warm table has it): for short histories it serves the blend
        assert {"pop", "itemknn", "ease", "tastebud", "tastebud no_semantic", "tastebud no_same_start"} | (
            {"ranker"} if "ranker" in out else set()) == set(level["models"])
        assert "tastebud - tastebud no_same_start" in level["comparisons"]
        assert all(m["users"] == 10 for m in level["models"].values())
