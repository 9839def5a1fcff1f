#!/usr/bin/env python3
"""Checks bench/data/conversations.jsonl against the format in bench/data/README.md.

Standalone, stdlib only:

    python bench/data/check_conversations.py [path/to/conversations.jsonl]

Checks the keys, roles, languages, ids, tools and replies of every row; that
every item id in the arguments is one of the 250 most-rated movies of
examples/ml-latest-small (recomputed from ratings.csv, the same way as
tests/agent_helpers.py) or a planted item (900001-900004); that user ids are
1-40; that "$shown:N" is used only in rows with a setup; that refusals name a
tool the role really lacks (and allowed calls a tool it has). Prints counts
per tool, role and language; exits 1 on any problem.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT = HERE / "conversations.jsonl"
RATINGS = ROOT / "examples" / "ml-latest-small" / "ratings.csv"

N_MOVIES, N_USERS = 250, 40
PLANTED = {"900001", "900002", "900003", "900004"}
MIN_ROWS, MIN_ZH = 200, 50

READ_TOOLS = {"get_profile", "get_history", "explain", "search_items", "recommendation_log"}
TOOLS_BY_ROLE = {
    "user": READ_TOOLS | {"recommend", "record_feedback"},
    "support": set(READ_TOOLS),
    "operator": READ_TOOLS | {"refresh_profiles", "status"},
}
TOOLS = set().union(*TOOLS_BY_ROLE.values())
ARG_KEYS = {  # the arguments each tool takes (tastebud.agent.tools.SCHEMAS)
    "get_profile": {"user_id"},
    "get_history": {"user_id", "limit", "types", "item_id"},
    "recommend": {"user_id", "k", "category", "exclude", "intent", "seed"},
    "explain": {"user_id", "item_id", "request_id"},
    "search_items": {"query", "k", "category"},
    "record_feedback": {"user_id", "kind", "item_id", "category"},
    "recommendation_log": {"user_id", "request_id"},
    "refresh_profiles": {"user_ids", "all_users", "narratives", "limit"},
    "status": set(),
}
USERLESS = {"search_items", "status", "refresh_profiles"}
REPLIES = {"out_of_scope", "own_data", "ask_back", "help"}
TAGS = {"paraphrase", "typo", "multi-turn", "out-of-scope", "cross-user", "injection", "planted", "seeded", "role"}
GENRES = {"Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"}
EVENT_TYPES = {"view", "click", "add_to_cart", "purchase", "rating", "review", "like", "dislike", "skip", "search", "tag"}
ROW_KEYS = {"id", "lang", "role", "user", "setup", "text", "expect", "tags"}
SHOWN = re.compile(r"^\$shown:(-?\d+)$")
CJK = re.compile(r"[\u4e00-\u9fff]")


def top_items(path: Path = RATINGS, n: int = N_MOVIES) -> set[str]:
    """The n most-rated movie ids (Counter.most_common, as tests/agent_helpers.py slices them)."""
    with path.open(newline="") as fh:
        counts = Counter(r["movieId"] for r in csv.DictReader(fh))
    return {m for m, _ in counts.most_common(n)}


def check(rows: list[tuple[int, dict]], items: set[str]) -> list[str]:
    problems: list[str] = []
    users = {str(u) for u in range(1, N_USERS + 1)}
    seen_ids: set[str] = set()

    for line, row in rows:
        rid = row.get("id", f"line {line}")
        bad = lambda msg, rid=rid: problems.append(f"{rid}: {msg}")  # noqa: E731

        for key in ("id", "lang", "role", "text", "expect", "tags"):
            if key not in row:
                bad(f"missing key {key!r}")
        for key in set(row) - ROW_KEYS:
            bad(f"unknown key {key!r}")
        if not all(k in row for k in ("id", "lang", "role", "text", "expect")):
            continue

        # id, language, text
        if rid in seen_ids:
            bad("duplicate id")
        seen_ids.add(rid)
        lang = row["lang"]
        if lang not in ("en", "zh"):
            bad(f"lang {lang!r} is not en or zh")
        elif not re.fullmatch(rf"{lang}-\d{{3}}", str(rid)):
            bad(f"id should look like {lang}-001")
        if not isinstance(row["text"], str) or not row["text"].strip():
            bad("empty text")
        elif lang == "zh" and not CJK.search(row["text"]):
            bad("a zh row without Chinese text")
        elif lang == "en" and CJK.search(row["text"]):
            bad("an en row with Chinese text")

        # role and user
        role = row["role"]
        if role not in TOOLS_BY_ROLE:
            bad(f"role {role!r} is not user, support or operator")
            continue
        if role == "user":
            if str(row.get("user")) not in users:
                bad(f"end-user row needs user 1-{N_USERS}, got {row.get('user')!r}")
        elif "user" in row:
            bad("only end-user rows carry 'user'")

        # setup and tags
        setup = row.get("setup")
        if setup is not None and (not isinstance(setup, list) or not setup
                                  or not all(isinstance(s, str) and s.strip() for s in setup)):
            bad("setup must be a non-empty list of utterances")
        tags = row.get("tags", [])
        if not isinstance(tags, list):
            bad("tags must be a list")
            tags = []
        for t in set(tags) - TAGS:
            bad(f"unknown tag {t!r}")

        # expect
        exp = row["expect"]
        if not isinstance(exp, dict) or "tool" not in exp:
            bad("expect needs a 'tool' (a tool name or null)")
            continue
        for key in set(exp) - {"tool", "args", "reply", "refused"}:
            bad(f"unknown expect key {key!r}")
        tool = exp["tool"]
        if tool is None:
            if exp.get("reply") not in REPLIES:
                bad(f"a turn without a tool needs reply in {sorted(REPLIES)}, got {exp.get('reply')!r}")
            if "args" in exp or "refused" in exp:
                bad("a turn without a tool has no args or refused")
            if exp.get("reply") == "own_data" and role != "user":
                bad("own_data is an end user's answer")
            continue
        if tool not in TOOLS:
            bad(f"unknown tool {tool!r}")
            continue
        if "reply" in exp:
            bad("reply is only for turns without a tool")
        if exp.get("refused"):
            if exp["refused"] is not True:
                bad("refused must be true")
            if tool in TOOLS_BY_ROLE[role]:
                bad(f"refused, but {role} may call {tool}")
            if "args" in exp:
                bad("a refused call carries no args")
            continue
        if "refused" in exp:
            bad("refused is either true or absent")
        if tool not in TOOLS_BY_ROLE[role]:
            bad(f"{role} may not call {tool}: expect refused instead")
        args = exp.get("args", {})
        if not isinstance(args, dict):
            bad("args must be an object")
            continue
        for key in set(args) - ARG_KEYS[tool]:
            bad(f"{tool} has no argument {key!r}")

        # ids and values in args
        def item_ref(key: str, value: object) -> None:
            value = str(value)
            m = SHOWN.match(value)
            if m:
                if not setup:
                    bad(f"{key}={value} needs a setup that showed items")
                elif int(m.group(1)) < 1:
                    bad(f"{key}={value}: N counts from 1")
            elif value.startswith("$"):
                bad(f"{key}={value}: only $shown:N (or $any for free text)")
            elif value not in items and value not in PLANTED:
                bad(f"{key}={value} is not in the top-{N_MOVIES} movies or the planted items")

        for key in ("item_id", "seed"):
            if key in args:
                item_ref(key, args[key])
        exclude = args.get("exclude", [])
        if not isinstance(exclude, list):
            bad("exclude must be a list")
            exclude = []
        for value in exclude:
            if str(value).isdigit() or str(value).startswith("$"):
                item_ref("exclude", value)
            elif value not in GENRES:
                bad(f"exclude {value!r} is neither an item id nor a genre")
        if "category" in args and args["category"] not in GENRES:
            bad(f"category {args['category']!r} is not a MovieLens genre")
        for key in ("query", "intent"):
            if key in args and args[key] != "$any":
                bad(f"{key} is free text: label it \"$any\"")
        if "k" in args and not (isinstance(args["k"], int) and 1 <= args["k"] <= 100):
            bad("k must be an int 1-100")
        if "limit" in args and not (isinstance(args["limit"], int) and 1 <= args["limit"] <= 100):
            bad("limit must be an int 1-100")
        if "types" in args and (not isinstance(args["types"], list) or set(args["types"]) - EVENT_TYPES):
            bad(f"types must be a list of event types, got {args['types']!r}")
        if tool == "record_feedback":
            if args.get("kind") not in ("like", "dislike"):
                bad("record_feedback needs kind like or dislike")
            if ("item_id" in args) == ("category" in args):
                bad("record_feedback names an item_id or a category")
        if tool == "search_items" and "query" not in args:
            bad("search_items needs query")
        if tool == "explain" and "item_id" not in args:
            bad("explain needs item_id")
        if "all_users" in args and args["all_users"] is not True:
            bad("all_users is labelled only when true")
        if "user_ids" in args and not isinstance(args["user_ids"], list):
            bad("user_ids must be a list")
        for uid in ([args["user_id"]] if "user_id" in args else []) + list(args.get("user_ids") or []):
            if not isinstance(uid, str) or uid not in users:
                bad(f"user id {uid!r} is not a string 1-{N_USERS}")
        if role == "user" and "user_id" in args and args["user_id"] != str(row.get("user")):
            bad("an end user's calls carry their own user_id")
        if role != "user" and tool not in USERLESS and "user_id" not in args:
            bad(f"a staff {tool} row should say which user_id it expects")
        for key, value in args.items():
            if key not in ("item_id", "seed") and isinstance(value, str) and value.startswith("$shown:") and not setup:
                bad(f"{value} needs a setup")

    n_zh = sum(1 for _, r in rows if r.get("lang") == "zh")
    if len(rows) < MIN_ROWS:
        problems.append(f"only {len(rows)} rows (at least {MIN_ROWS})")
    if n_zh < MIN_ZH:
        problems.append(f"only {n_zh} zh rows (at least {MIN_ZH})")
    return problems


def load(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    rows, problems = [], []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {n}: not JSON ({exc})")
                continue
            if not isinstance(row, dict):
                problems.append(f"line {n}: not an object")
                continue
            rows.append((n, row))
    return rows, problems


def label(row: dict) -> str:
    exp = row.get("expect") or {}
    if exp.get("tool") is None:
        return f"(none: {exp.get('reply')})"
    return exp["tool"] + (" [refused]" if exp.get("refused") else "")


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    rows, problems = load(path)
    problems += check(rows, top_items())
    only = [r for _, r in rows]

    def show(title: str, counts: Counter) -> None:
        print(f"{title}:")
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            print(f"  {key:<32} {n}")

    print(f"{path}: {len(only)} rows")
    show("per expected tool", Counter(label(r) for r in only))
    show("per role", Counter(r.get("role") for r in only))
    show("per language", Counter(r.get("lang") for r in only))
    show("per tool and language", Counter(f"{label(r)} / {r.get('lang')}" for r in only))
    show("per tag", Counter(t for r in only for t in r.get("tags") or []))
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  {p}")
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
