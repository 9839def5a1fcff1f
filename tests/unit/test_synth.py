"""bench/synth.py: the synthetic stream the scale bench runs on must be
reproducible, of the size asked, ingestible without quarantine, and skewed
like real traffic, or the scale figures measure nothing realistic."""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tastebud.profiles.ingest import Ingestor

ROOT = Path(__file__).resolve().parents[2]


def _load_synth():
    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "bench" / "synth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


synth = _load_synth()


def rows(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_other_seed_other_stream(tmp_path):
    a = synth.generate(tmp_path / "a", 3000, seed=3, malformed=0.01)
    b = synth.generate(tmp_path / "b", 3000, seed=3, malformed=0.01)
    c = synth.generate(tmp_path / "c", 3000, seed=4, malformed=0.01)
    for name in ("events.csv", "catalog.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "events.csv").read_bytes() != (tmp_path / "c" / "events.csv").read_bytes()
    assert a.as_dict() | {"events_path": "", "catalog_path": ""} == b.as_dict() | {"events_path": "", "catalog_path": ""}


@pytest.mark.parametrize("n", [1, 57, 4000])
def test_writes_exactly_the_events_asked_for(tmp_path, n):
    report = synth.generate(tmp_path, n, seed=1)
    events = rows(report.events_path)
    assert len(events) == report.events == n
    assert len({r["event_id"] for r in events}) == n
    assert len({r["user_id"] for r in events}) == report.users
    assert len(rows(report.catalog_path)) == report.items
    assert sum(report.by_type.values()) == n


def test_jsonl_has_the_same_rows_as_csv(tmp_path):
    import json

    as_csv = synth.generate(tmp_path / "csv", 500, seed=2)
    as_jsonl = synth.generate(tmp_path / "jsonl", 500, seed=2, fmt="jsonl")
    lines = Path(as_jsonl.events_path).read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [r["event_id"] for r in rows(as_csv.events_path)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_row_ingests_and_only_planted_rows_are_quarantined(tmp_path, store, fmt):
    clean = synth.generate(tmp_path / "clean", 5000, seed=5, fmt=fmt)
    ingestor = Ingestor(store)
    catalog = ingestor.ingest_catalog(clean.catalog_path)
    assert (catalog.accepted, catalog.rejected) == (clean.items, 0)
    report = ingestor.ingest_events(clean.events_path)
    assert (report.read, report.accepted, report.duplicates, report.rejected) == (5000, 5000, 0, 0)
    status = store.status()
    assert status["stub_items"] == 0  # every event names a catalog item
    assert set(status["events_by_type"]) >= {"view", "click", "rating", "review", "search", "like", "dislike", "skip"}

    dirty = synth.generate(tmp_path / "dirty", 5000, seed=6, malformed=0.01, fmt=fmt)
    assert 20 <= dirty.malformed <= 90
    report = ingestor.ingest_events(dirty.events_path)
    assert report.rejected == dirty.malformed
    assert report.accepted == 5000 - dirty.malformed
    assert len(store.open_quarantine()) == dirty.malformed


def test_stated_preferences_are_item_less_category_statements(tmp_path):
    report = synth.generate(tmp_path, 20000, seed=8)
    stated = [r for r in rows(report.events_path) if r["type"] in ("like", "dislike") and not r["item_id"]]
    assert stated, "some users state a preference"
    assert {r["text"] for r in stated} <= set(synth.CATEGORIES)


def test_users_and_items_are_skewed_like_real_traffic(tmp_path):
    report = synth.generate(tmp_path, 30000, seed=9)
    events = rows(report.events_path)
    per_user = sorted(Counter(r["user_id"] for r in events).values(), reverse=True)
    top_users = sum(per_user[: max(1, len(per_user) // 10)]) / len(events)
    per_item = sorted(Counter(r["item_id"] for r in events if r["item_id"]).values(), reverse=True)
    top_items = sum(per_item[: max(1, report.items // 10)]) / sum(per_item)
    # uniform activity would give 0.10; MovieLens latest-small gives about 0.5 for users
    assert top_users >= 0.45, top_users
    assert top_items >= 0.45, top_items
    assert per_user[0] >= 5 * len(events) / report.users  # the heaviest user, against the mean


def test_ratings_follow_each_users_taste(tmp_path):
    """A user rates the categories they pick most higher than the ones they pick least."""
    report = synth.generate(tmp_path, 30000, seed=10)
    primary = {r["item_id"]: r["categories"].split("|")[0] for r in rows(report.catalog_path)}
    picks: dict[str, Counter] = defaultdict(Counter)
    ratings: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows(report.events_path):
        if r["item_id"]:
            cat = primary[r["item_id"]]
            picks[r["user_id"]][cat] += 1
            if r["type"] == "rating":
                ratings[(r["user_id"], cat)].append(float(r["value"]))
    favourite, other = [], []
    for user, counts in picks.items():
        top = counts.most_common(1)[0][0]
        for cat in counts:
            vals = ratings.get((user, cat))
            if vals:
                (favourite if cat == top else other).extend(vals)
    assert len(favourite) > 100 and len(other) > 100
    assert sum(favourite) / len(favourite) >= sum(other) / len(other) + 0.5
