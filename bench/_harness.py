"""What every bench shares: a clean TASTEBUD_HOME (temporary unless --home) and
--json output, so figures never depend on the caller's settings."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


def run_in_home(args: Any, prefix: str, run: Callable[[Any, Path, Callable[..., None]], dict]) -> dict:
    """run(args, home, say) with TASTEBUD_HOME set and every other TASTEBUD_* unset;
    with --json, progress goes to stderr and the result to stdout as JSON."""
    tmp = None
    if args.home:
        home = Path(args.home)
    else:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        home = Path(tmp.name)
    os.environ["TASTEBUD_HOME"] = str(home)
    for key in list(os.environ):
        if key.startswith("TASTEBUD_") and key != "TASTEBUD_HOME":
            del os.environ[key]
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    try:
        result = run(args, home, say)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        print(json.dumps(result, indent=2))
    return result


def split_and_item_vectors(directory: Path, prefix: str, validation: bool = True):
    """(settings, split, embedder, item vectors, interest config, blend) for a MovieLens folder
    in a fresh temporary home: the warm split, or (validation) the validation split of its
    training part, and its items encoded once."""
    from tastebud.profiles.interest import InterestConfig
    from tastebud.retrieval.embedder import get_embedder
    from tastebud.retrieval.evaluation import validation_split
    from tastebud.retrieval.offline import load_split
    from tastebud.settings import load_settings

    settings = load_settings(home=tempfile.mkdtemp(prefix=prefix))
    split = load_split({"movielens": str(directory)}, settings)
    if validation:
        split = validation_split(split)
    embedder = get_embedder(settings)
    catalog = split.train.catalog or {}
    item_vectors = embedder.encode([catalog[i].text_for_embedding() if i in catalog else i for i in split.train.items])
    return settings, split, embedder, item_vectors, InterestConfig.from_settings(settings), dict(settings.blend)


def old_profile_text(profile: dict, horizon: str) -> str:
    """The text each profile vector was encoded from before profile vectors became
    averages of item vectors (retrieval/profile_vectors.py): kept as the baseline
    the refresh and embedding benches compare against."""
    from tastebud import pii

    h = profile[horizon]
    tags = ", ".join(t["tag"] for t in h["tags"][:10])
    titles = [i["title"] for i in h["top_items"][:5]]
    liked = "; ".join(titles)
    return pii.mask(f"Interests: {tags}. Liked: {liked}." if liked else f"Interests: {tags}.", keep=titles)
