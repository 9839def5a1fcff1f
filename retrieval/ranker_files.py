"""Where a trained ranker lives and what state it is in, readable without numpy or lightgbm
(`tastebud status` stays a quick read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEATURES = ("co_occurrence", "co_occurrence_short", "popularity", "popularity_recent", "tag_match",
            "semantic_long", "semantic_short", "ease", "user_events", "user_mean_rating",
            "item_age_days", "popularity_share_year")
MODEL_FILE, SOURCES_FILE, META_FILE = "ranker.txt", "ranker_sources.npz", "ranker.json"


def ranker_dir(home: Path) -> Path:
    return Path(home) / "models" / "ranker"


def present(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (MODEL_FILE, SOURCES_FILE, META_FILE))


def read_meta(folder: Path) -> tuple[str, dict[str, Any]]:
    """(state, metadata) of a saved model: "unreadable", "stale" (a version with other
    features, which the blend replaces until `tastebud train-ranker` is rerun) or "in use"."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return "unreadable", {}
    return ("in use" if list(meta.get("features", [])) == list(FEATURES) else "stale"), meta


def ranker_state(folder: Path | None) -> dict[str, Any]:
    """{"state": off | none | unreadable | stale | in use, and what the model says of its training}."""
    if folder is None:
        return {"state": "off"}
    if not present(folder):
        return {"state": "none"}
    state, meta = read_meta(folder)
    return {"state": state, **{k: meta[k] for k in ("trained_at", "trained_on_events", "min_history") if k in meta}}
