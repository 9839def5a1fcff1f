"""A realistic synthetic event stream and catalog, at any size, for `tastebud ingest`.

    .venv/bin/python bench/synth.py --events 100000 --out DIR [--seed 7] [--users U] [--items I]
                                    [--malformed 0.001] [--format csv|jsonl]

Writes DIR/events.csv (or .jsonl) and DIR/catalog.csv; `tastebud ingest catalog
DIR/catalog.csv` and `tastebud ingest events DIR/events.csv` read them. Why it
looks like real traffic rather than uniform noise:

- Users and items are power-law: user activity and item popularity are
  Zipf-Mandelbrot weights (USER_ZIPF, ITEM_ZIPF) over random ranks, so a few users
  hold most events and a few items most interactions, as in MovieLens or logs.
- Each user has a latent taste over CATEGORIES (a sparse Dirichlet) and, for
  some, a disliked category; items are chosen by taste, then by popularity
  within the category, and ratings follow the taste (liked categories rate
  high, the disliked one low), so profiles and co-occurrence have structure.
- Events come in sessions (bursts minutes apart, sessions days apart), with
  views, clicks, carts, purchases, ratings, reviews, tags, likes, skips,
  dislikes and item-less searches; some users state preferences ("like" or
  "dislike" a category with no item).
- Rows are written as a stream: blocks of BLOCK_USERS users are generated,
  merged by time and written, so memory holds one block, never the whole
  stream, and the file interleaves users the way a real log does.

Deterministic by --seed: the same arguments write byte-identical files. Every
row has an event_id, so every good row is accepted once. --malformed F plants
about F x events broken rows (unknown type, bad timestamp, non-numeric or
off-scale rating, missing user), each counted, to exercise the quarantine.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CATEGORIES = ("Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family", "Fantasy",
              "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "Noir")
TAGS = {c: tuple(f"{w}" for w in words.split()) for c, words in {
    "Action": "explosions chase heist martial-arts", "Adventure": "quest treasure journey jungle",
    "Animation": "hand-drawn stop-motion talking-animals pixar", "Comedy": "witty slapstick satire deadpan",
    "Crime": "mafia detective courtroom gangster", "Documentary": "nature history biography science",
    "Drama": "family-drama tearjerker coming-of-age slow-burn", "Family": "kids holiday heartwarming pets",
    "Fantasy": "dragons magic wizards fairy-tale", "Horror": "gore haunted slasher zombies",
    "Musical": "broadway dance songs jazz", "Mystery": "whodunit twist amnesia puzzle",
    "Romance": "love-triangle wedding romcom period-romance", "Sci-Fi": "space time-travel robots dystopia",
    "Thriller": "suspense conspiracy psychological hostage", "War": "wwii trenches resistance navy",
    "Western": "gunslinger frontier outlaws ranch", "Noir": "femme-fatale rain-soaked hard-boiled shadows",
}.items()}
ADJECTIVES = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Lost", "Wild", "Frozen",
              "Electric", "Velvet", "Iron", "Paper", "Burning", "Distant", "Hollow", "Secret", "Lucky", "Savage")
NOUNS = ("Harbor", "Empire", "Garden", "Signal", "River", "Witness", "Kingdom", "Orchard", "Protocol", "Horizon",
         "Carnival", "Frontier", "Mirror", "Station", "Lantern", "Circuit", "Canyon", "Letter", "Voyage", "Engine")

# Event types and how often each occurs among item events (searches and stated preferences are added apart).
TYPE_SHARES = {"view": 0.42, "click": 0.15, "rating": 0.25, "add_to_cart": 0.04, "purchase": 0.04, "like": 0.03,
               "review": 0.02, "tag": 0.02, "skip": 0.02, "dislike": 0.01}
SEARCH_SHARE = 0.02  # of all events: item-less searches
STATED_SHARE = 0.3  # of users: state a category like or dislike somewhere in their stream
USER_ZIPF, ITEM_ZIPF = (1.0, 2.0), (0.9, 5.0)  # (exponent, offset)
TASTE_ALPHA = 0.3  # Dirichlet concentration: small = a few favourite categories
TASTE_FOLLOW = 0.75  # share of item choices driven by taste; the rest by global popularity
SESSION_MEAN = 8  # events per session
BLOCK_USERS = 500
START_S = 1_577_836_800  # 2020-01-01, fixed so the files do not depend on the day they are written
END_S = 1_735_689_600  # 2025-01-01
MALFORMED_KINDS = ("unknown type", "bad timestamp", "non-numeric rating", "off-scale rating", "missing user")
EVENT_COLUMNS = ("event_id", "user_id", "item_id", "type", "timestamp", "value", "text")


def default_users(events: int) -> int:
    """About 150 events per user on average (MovieLens latest-small: 165)."""
    return max(10, events // 150)


def default_items(events: int) -> int:
    """Catalogs grow slower than traffic: 20 x sqrt(events), 2,000 items at 10k events, 20,000 at 1M."""
    return max(50, int(20 * math.sqrt(events)))


@dataclass
class SynthReport:
    events: int  # rows written, malformed ones included
    malformed: int
    users: int
    items: int
    by_type: dict[str, int] = field(default_factory=dict)
    events_path: str = ""
    catalog_path: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _zipf_weights(n: int, exponent: float, offset: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-Mandelbrot weights (rank + offset) ** -exponent over a random ranking of n
    things, summing to 1; the offset keeps the very top from holding a tenth of everything."""
    ranks = rng.permutation(n) + 1
    w = (ranks.astype(np.float64) + offset) ** -exponent
    return w / w.sum()


class _Catalog:
    def __init__(self, n_items: int, rng: np.random.Generator):
        n_cat = len(CATEGORIES)
        cat_pop = _zipf_weights(n_cat, 0.6, 0.0, rng)  # some categories are bigger than others
        self.primary = rng.choice(n_cat, size=n_items, p=cat_pop)
        self.popularity = _zipf_weights(n_items, *ITEM_ZIPF, rng=rng)
        self.cum_all = np.cumsum(self.popularity)
        self.extra: list[tuple[int, ...]] = []
        self.tags: list[tuple[str, ...]] = []
        for i in range(n_items):
            k = int(rng.integers(0, 3))  # 0-2 secondary categories
            extra = tuple(int(c) for c in rng.choice(n_cat, size=k, replace=False) if c != self.primary[i])
            self.extra.append(extra)
            pool = TAGS[CATEGORIES[self.primary[i]]]
            self.tags.append(tuple(pool[j] for j in sorted(rng.choice(len(pool), size=int(rng.integers(1, 3)), replace=False))))
        self.by_cat: list[np.ndarray] = []
        self.cum_by_cat: list[np.ndarray] = []
        for c in range(n_cat):
            members = np.flatnonzero(self.primary == c)
            if members.size == 0:  # a tiny catalog: borrow the most popular item
                members = np.array([int(np.argmax(self.popularity))])
            self.by_cat.append(members)
            self.cum_by_cat.append(np.cumsum(self.popularity[members]) / self.popularity[members].sum())

    def categories(self, i: int) -> list[str]:
        return [CATEGORIES[self.primary[i]]] + [CATEGORIES[c] for c in self.extra[i]]

    def title(self, i: int) -> str:
        return f"The {ADJECTIVES[i % 20]} {NOUNS[(i // 20) % 20]} ({1950 + (i * 7919) % 75})"

    def write(self, path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(("item_id", "title", "description", "categories", "tags"))
            for i in range(len(self.primary)):
                cats = self.categories(i)
                desc = f"A {cats[0].lower()} story of {self.tags[i][0].replace('-', ' ')}."
                out.writerow((f"i{i}", self.title(i), desc, "|".join(cats), "|".join(self.tags[i])))


def _rating(affinity: float, noise: float) -> float:
    """Taste-driven rating on the 0.5-5 scale in half stars."""
    raw = 1.5 + 3.5 * affinity + noise
    return float(min(5.0, max(0.5, round(raw * 2) / 2)))


def _user_rows(u: int, n: int, cat: _Catalog, rng: np.random.Generator, malformed: float,
               counts: dict[str, int]) -> list[tuple]:
    """One user's n rows, (ts, fields...) in time order; planted malformed rows replace good ones."""
    n_cat = len(CATEGORIES)
    taste = rng.dirichlet(np.full(n_cat, TASTE_ALPHA))
    disliked = int(rng.integers(n_cat)) if rng.random() < 0.4 else -1
    if disliked >= 0:
        taste[disliked] = 0.0
        taste /= taste.sum()
    affinity = taste / taste.max()
    # sessions: bursts of events minutes apart, sessions days apart
    start = START_S + int(rng.random() * (END_S - START_S) * 0.8)
    gaps = np.where(rng.random(n) < 1.0 / SESSION_MEAN, rng.exponential(4 * 86_400, n), rng.exponential(180, n))
    span = float(gaps.sum())
    if span > END_S - start:  # a heavy user's sessions come closer together rather than pile up at the end
        gaps *= (END_S - start) / span
    ts = start + np.cumsum(gaps).astype(np.int64)
    # items: by taste then popularity within the category, else by global popularity
    by_taste = rng.random(n) < TASTE_FOLLOW
    cats = rng.choice(n_cat, size=n, p=taste)
    items = np.searchsorted(cat.cum_all, rng.random(n) * cat.cum_all[-1]).clip(0, len(cat.primary) - 1)
    for c in np.unique(cats[by_taste]):
        sel = by_taste & (cats == c)
        picks = np.searchsorted(cat.cum_by_cat[c], rng.random(int(sel.sum()))).clip(0, len(cat.by_cat[c]) - 1)
        items[sel] = cat.by_cat[c][picks]
    types = rng.choice(len(TYPE_SHARES), size=n, p=np.array(list(TYPE_SHARES.values())))
    searches = rng.random(n) < SEARCH_SHARE
    noise = rng.normal(0.0, 0.6, n)
    type_names = list(TYPE_SHARES)
    rows: list[tuple] = []
    uid = f"u{u}"
    stated_at = int(rng.integers(n)) if rng.random() < STATED_SHARE else -1
    for k in range(n):
        t = int(ts[k])
        if k == stated_at:
            if disliked >= 0:
                rows.append((t, uid, "", "dislike", str(t), "", CATEGORIES[disliked]))
            else:
                rows.append((t, uid, "", "like", str(t), "", CATEGORIES[int(np.argmax(taste))]))
            continue
        if searches[k]:
            c = CATEGORIES[int(cats[k])]
            rows.append((t, uid, "", "search", str(t), "", f"{ADJECTIVES[k % 20].lower()} {c.lower()}"))
            continue
        i = int(items[k])
        a = float(affinity[cat.primary[i]])
        kind = type_names[int(types[k])]
        if a < 0.05 and kind in ("like", "purchase", "add_to_cart"):
            kind = "skip"  # nobody buys from the category they avoid
        value, text = "", ""
        if kind == "rating":
            value = repr(_rating(a, float(noise[k])))
        elif kind == "review":
            tag = cat.tags[i][0].replace("-", " ")
            text = (f"Loved the {tag}, exactly my kind of {CATEGORIES[cat.primary[i]].lower()}" if a >= 0.5
                    else f"Too much {tag} for me, not my thing")
        elif kind == "tag":
            text = cat.tags[i][int(noise[k] > 0) % len(cat.tags[i])]
        rows.append((t, uid, f"i{i}", kind, str(t), value, text))
    if malformed > 0:
        for k in np.flatnonzero(rng.random(n) < malformed):
            t, uid_, item, kind, stamp, value, text = rows[k]
            what = MALFORMED_KINDS[int(k) % len(MALFORMED_KINDS)]
            item = item or "i0"
            if what == "unknown type":
                rows[k] = (t, uid_, item, "frown", stamp, "", "")
            elif what == "bad timestamp":
                rows[k] = (t, uid_, item, "view", "yesterday-ish", "", "")
            elif what == "non-numeric rating":
                rows[k] = (t, uid_, item, "rating", stamp, "five", "")
            elif what == "off-scale rating":
                rows[k] = (t, uid_, item, "rating", stamp, "9", "")
            else:
                rows[k] = (t, "", item, "view", stamp, "", "")
            counts["_malformed"] = counts.get("_malformed", 0) + 1
    for row in rows:
        counts[row[3]] = counts.get(row[3], 0) + 1
    return rows


def generate(out_dir: str | Path, events: int, seed: int = 7, users: int | None = None, items: int | None = None,
             malformed: float = 0.0, fmt: str = "csv") -> SynthReport:
    """Write DIR/events.{csv,jsonl} and DIR/catalog.csv; exactly `events` rows (malformed ones included)."""
    if events < 1:
        raise ValueError("events must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_users = min(events, users or default_users(events))
    n_items = items or default_items(events)
    rng = np.random.default_rng(seed)
    cat = _Catalog(n_items, rng)
    catalog_path = out / "catalog.csv"
    cat.write(catalog_path)
    # every user gets at least one event, the rest by Zipf activity
    per_user = 1 + rng.multinomial(events - n_users, _zipf_weights(n_users, *USER_ZIPF, rng=rng))
    counts: dict[str, int] = {}
    events_path = out / f"events.{fmt}"
    seq = 0
    with open(events_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writerow(EVENT_COLUMNS)
        for block in range(0, n_users, BLOCK_USERS):
            rows: list[tuple] = []
            for u in range(block, min(block + BLOCK_USERS, n_users)):
                rows.extend(_user_rows(u, int(per_user[u]), cat, rng, malformed, counts))
            rows.sort(key=lambda r: r[0])  # stable: each user's rows stay in their order
            for _, uid, item, kind, stamp, value, text in rows:
                eid = f"s{seed}-{seq}"
                seq += 1
                if writer is not None:
                    writer.writerow((eid, uid, item, kind, stamp, value, text))
                else:
                    obj = {"event_id": eid, "user_id": uid, "item_id": item or None, "type": kind,
                           "timestamp": int(stamp) if stamp.isdecimal() else stamp}
                    if value:
                        obj["value"] = float(value) if value.replace(".", "", 1).isdecimal() else value
                    if text:
                        obj["text"] = text
                    fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
    planted = counts.pop("_malformed", 0)
    return SynthReport(seq, planted, n_users, n_items, dict(sorted(counts.items())), str(events_path), str(catalog_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, required=True, help="rows to write (malformed ones included)")
    parser.add_argument("--out", required=True, help="folder for events.csv/jsonl and catalog.csv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=None, help="default: events / 150")
    parser.add_argument("--items", type=int, default=None, help="default: 20 x sqrt(events)")
    parser.add_argument("--malformed", type=float, default=0.0, help="share of rows to break on purpose (e.g. 0.001)")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    args = parser.parse_args(argv)
    report = generate(args.out, args.events, args.seed, args.users, args.items, args.malformed, args.format)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
