"""PII detector quality: precision, recall and F1 per kind and language.

    .venv/bin/python bench/pii.py [FILE ...] [--errors]

Default file: bench/data/pii_labelled.jsonl (216 rows: 163 planted spans, EN and ZH,
every kind in both, plus 62 hard negatives; L164-L216 are the name cases). The
held-out bench/data/pii_heldout.jsonl (52 rows, 34 spans, 18 hard negatives) was
written before the detector (H037-H052, names, before the name rules were tuned)
and is scored only for the record. A name span is the name without its honorific
("Mr. [name]", "[name]先生").

Span level, per kind. A found span is a true positive when it overlaps a planted
span of the same kind that no other found span has claimed; otherwise it is a
false positive (counted under the kind it claims). A planted span nothing claims is
a false negative. "exact" repeats the count requiring the same characters (after
trimming spaces and trailing punctuation), which is what masking needs to leave the
rest of the sentence intact.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tastebud import pii

DEFAULT = Path(__file__).resolve().parent / "data" / "pii_labelled.jsonl"


def load(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["gold"] = []
            for s in row["spans"]:
                start = row["text"].index(s["text"])
                row["gold"].append(pii.Span(s["kind"], start, start + len(s["text"])))
            rows.append(row)
    return rows


def _same(a: str, b: str) -> bool:
    return a.strip(" ,.;:，。") == b.strip(" ,.;:，。")


def score(rows: list[dict]) -> tuple[dict, list[str]]:
    """{(lang, kind): Counter(tp, fp, fn, exact)} and one line per error."""
    counts: dict = {}
    errors = []
    for row in rows:
        found = pii.find(row["text"])
        claimed: set[int] = set()
        for span in found:
            c = counts.setdefault((row["lang"], span.kind), Counter())
            hit = next((i for i, g in enumerate(row["gold"]) if i not in claimed and g.kind == span.kind
                        and span.start < g.end and g.start < span.end), None)
            if hit is None:
                c["fp"] += 1
                errors.append(f"FP {row['id']} {span.kind}: {row['text'][span.start:span.end]!r} in {row['text']!r}")
                continue
            claimed.add(hit)
            c["tp"] += 1
            gold = row["gold"][hit]
            if _same(row["text"][span.start:span.end], row["text"][gold.start:gold.end]):
                c["exact"] += 1
            else:
                errors.append(f"PARTIAL {row['id']} {span.kind}: {row['text'][span.start:span.end]!r} "
                              f"vs {row['text'][gold.start:gold.end]!r}")
        for i, gold in enumerate(row["gold"]):
            if i not in claimed:
                counts.setdefault((row["lang"], gold.kind), Counter())["fn"] += 1
                errors.append(f"FN {row['id']} {gold.kind}: {row['text'][gold.start:gold.end]!r} in {row['text']!r}")
    return counts, errors


def prf(c: Counter, tp_key: str = "tp") -> tuple[float, float, float]:
    tp = c[tp_key]
    found = c["tp"] + c["fp"]
    planted = c["tp"] + c["fn"]
    p = tp / found if found else 1.0
    r = tp / planted if planted else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def table(counts: dict) -> str:
    lines = [f"{'lang':4} {'kind':10} {'planted':>7} {'found':>5} {'tp':>4} {'P':>6} {'R':>6} {'F1':>6}   {'exact P':>7} {'exact R':>7}"]
    groups: dict = {}
    for (lang, kind), c in sorted(counts.items()):
        groups.setdefault((lang, kind), c)
        groups.setdefault((lang, "ALL"), Counter()).update(c)
        groups.setdefault(("all", kind), Counter()).update(c)
        groups.setdefault(("all", "ALL"), Counter()).update(c)
    order = [(lang, kind) for lang in ("en", "zh", "all") for kind in (*pii.KINDS, "ALL") if (lang, kind) in groups]
    for lang, kind in order:
        c = groups[(lang, kind)]
        p, r, f = prf(c)
        ep, er, _ = prf(c, "exact")
        lines.append(f"{lang:4} {kind:10} {c['tp'] + c['fn']:>7} {c['tp'] + c['fp']:>5} {c['tp']:>4} "
                     f"{p:>6.3f} {r:>6.3f} {f:>6.3f}   {ep:>7.3f} {er:>7.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--errors", action="store_true", help="list every miss, false alarm and partial span")
    args = parser.parse_args(argv)
    for path in args.files:
        rows = load(path)
        counts, errors = score(rows)
        negatives = sum(1 for r in rows if not r["spans"])
        print(f"{path.name}: {len(rows)} rows, {sum(len(r['gold']) for r in rows)} planted spans, "
              f"{negatives} hard negatives; overlap match (exact: same characters)")
        print(table(counts))
        if args.errors:
            print("\n".join(errors) or "no errors")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
