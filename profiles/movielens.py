"""MovieLens layouts: ml-latest-small (ratings/movies/tags CSV) and ml-100k (u.data, u.item).

Ratings become `rating` events, tags become `tag` events and item tags, genres
become item categories. Rows still pass through the shared validation, so a
broken line is quarantined like any other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from tastebud.profiles.ingest import IngestReport, Ingestor
from tastebud.profiles.readers import EVENT_ALIASES, ITEM_ALIASES, read_csv
from tastebud.errors import InputError

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]
NO_GENRE = "(no genres listed)"


def detect_layout(directory: Path) -> str:
    if (directory / "ratings.csv").is_file() and (directory / "movies.csv").is_file():
        return "latest"
    if (directory / "u.data").is_file() and (directory / "u.item").is_file():
        return "100k"
    raise InputError(
        f"{directory} is not a MovieLens directory",
        hint="expected ratings.csv + movies.csv (ml-latest-small) or u.data + u.item (ml-100k)",
    )


# Each release's rating scale: ml-latest rates in half stars, ml-100k in whole ones.
RATING_SCALES = {"latest": (0.5, 5.0), "100k": (1.0, 5.0)}


def rating_scale(directory: str | Path) -> tuple[float, float]:
    return RATING_SCALES[detect_layout(Path(directory))]


def adopt_rating_scale(settings: Any, directory: str | Path) -> tuple[float, float] | None:
    """Save the release's scale to tastebud.toml when nobody chose one, so events
    posted later to this home are checked on the same scale; returns it if saved."""
    from tastebud.settings import write_setting

    scale = rating_scale(directory)
    sources = settings.sources
    if (settings.rating_min, settings.rating_max) == scale:
        return None
    if sources["rating_min"] != "default" or sources["rating_max"] != "default":
        return None
    write_setting(settings, "rating_min", scale[0])
    write_setting(settings, "rating_max", scale[1])
    return scale


def ingest_movielens(ingestor: Ingestor, directory: str | Path) -> dict[str, IngestReport]:
    """Ratings are checked against the release's own scale, whatever the settings say."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"no such directory: {directory}")
    layout = detect_layout(directory)
    low, high = RATING_SCALES[layout]
    configured = ingestor.rules
    ingestor.rules = replace(configured, rating_min=low, rating_max=high)
    try:
        if layout == "latest":
            return _ingest_latest(ingestor, directory)
        return _ingest_100k(ingestor, directory)
    finally:
        ingestor.rules = configured


@contextmanager
def _rows(ingestor: Ingestor, path: Path, aliases, **kwargs: Any) -> Iterator[read_csv]:
    """The file's CSV reader (the ingestor reads its header for quarantined rows)."""
    size = path.stat().st_size
    progress = (lambda done: ingestor.progress(done, size)) if ingestor.progress else None
    with path.open("rb") as stream:
        yield read_csv(stream, aliases, progress=progress, **kwargs)


def _movie_tags(path: Path) -> dict[str, list[str]]:
    """Per movie, its user tags by frequency: they become item tags."""
    import csv

    counts: dict[str, Counter] = defaultdict(Counter)
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            tag = (row.get("tag") or "").strip().lower()
            if tag and row.get("movieId"):
                counts[row["movieId"].strip()][tag] += 1
    return {movie: [t for t, _ in c.most_common(20)] for movie, c in counts.items()}


def _ingest_latest(ingestor: Ingestor, directory: Path) -> dict[str, IngestReport]:
    tags_by_movie = _movie_tags(directory / "tags.csv")

    def movie(fields: Mapping[str, Any]) -> Mapping[str, Any]:
        genres = fields.get("categories") or ""
        return {
            "item_id": fields.get("item_id"),
            "title": fields.get("title"),
            "categories": "" if genres.strip() == NO_GENRE else genres,
            "tags": tags_by_movie.get((fields.get("item_id") or "").strip(), []),
        }

    movies = directory / "movies.csv"
    with _rows(ingestor, movies, ITEM_ALIASES) as rows:
        reports = {"catalog": ingestor.ingest_item_rows(rows, str(movies.resolve()), "csv", movie)}

    ratings = directory / "ratings.csv"
    with _rows(ingestor, ratings, EVENT_ALIASES) as rows:
        events = ingestor.ingest_event_rows(rows, str(ratings.resolve()), "csv", constants={"type": "rating"})
    tags_file = directory / "tags.csv"
    if tags_file.is_file():
        with _rows(ingestor, tags_file, EVENT_ALIASES) as rows:
            events.add(ingestor.ingest_event_rows(rows, str(tags_file.resolve()), "csv", constants={"type": "tag"}))
    events.source = str(directory.resolve())
    reports["events"] = events
    return reports


def _ingest_100k(ingestor: Ingestor, directory: Path) -> dict[str, IngestReport]:
    genres = ML100K_GENRES
    genre_file = directory / "u.genre"
    if genre_file.is_file():
        names = [line.split("|")[0] for line in genre_file.read_text(encoding="latin-1").splitlines() if "|" in line]
        genres = names or genres
    width = 5 + len(genres)
    item_header = ["item_id", "title", "release_date", "video_release", "url", *[f"g{i}" for i in range(len(genres))]]

    def movie(fields: Mapping[str, Any]) -> Mapping[str, Any]:
        cats = [genres[i] for i in range(len(genres)) if (fields.get(f"g{i}") or "0").strip() == "1" and genres[i] != "unknown"]
        attrs = {k: fields[k] for k in ("release_date", "url") if fields.get(k)}
        return {"item_id": fields.get("item_id"), "title": fields.get("title"), "categories": cats, "attributes": attrs}

    item_path = directory / "u.item"
    with _rows(ingestor, item_path, ITEM_ALIASES, encoding="latin-1", delimiter="|", header=item_header[:width]) as rows:
        reports = {"catalog": ingestor.ingest_item_rows(rows, str(item_path.resolve()), "csv", movie)}
    data_path = directory / "u.data"
    with _rows(ingestor, data_path, EVENT_ALIASES, delimiter="\t", header=["user_id", "item_id", "value", "timestamp"]) as rows:
        reports["events"] = ingestor.ingest_event_rows(rows, str(data_path.resolve()), "csv", constants={"type": "rating"})
    return reports
