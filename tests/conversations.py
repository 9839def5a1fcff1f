"""The conversation benchmark's runner and scorer, shared by the fast test
(tests/unit/test_agent_benchmark.py: router only, deterministic renderings)
and bench/agent.py (the real embedded model). The data and its format:
bench/data/conversations.jsonl and bench/data/README.md."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "conversations.jsonl"
SIDE_EFFECT_TOOLS = frozenset({"refresh_profiles", "record_feedback"})
_CJK = re.compile(r"[\u4e00-\u9fff]")


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Outcome:
    row: dict[str, Any]
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    refused: bool = False
    reply_kind: str | None = None
    answer: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # the results of the turn's calls that succeeded
    shown: list[str] = field(default_factory=list)  # item ids shown before the turn
    claims: dict[str, Any] = field(default_factory=dict)
    phrased_by: str = "template"
    replaced: bool = False
    first_token_s: float | None = None
    total_s: float = 0.0
    out_of_role: list[str] = field(default_factory=list)  # tools that ran although the role may not use them
    error: str | None = None

    # ------------------------------------------------------------ scoring
    @property
    def expect(self) -> dict[str, Any]:
        return self.row["expect"]

    @property
    def route_ok(self) -> bool:
        want = self.expect.get("tool")
        if want is None:
            return self.tool is None and self.reply_kind == self.expect.get("reply")
        if self.tool != want:
            return False
        return bool(self.refused) == bool(self.expect.get("refused"))

    @property
    def args_ok(self) -> bool:
        if not self.route_ok:
            return False
        return not self.arg_mismatches()

    def arg_mismatches(self) -> list[str]:
        out = []
        for key, want in (self.expect.get("args") or {}).items():
            got = self.args.get(key)
            if not _matches(self._resolve(want), got):
                out.append(f"{key}: want {want!r}, got {got!r}")
        return out

    def _resolve(self, want: Any) -> Any:
        if isinstance(want, str) and want.startswith("$shown:"):
            n = int(want.split(":", 1)[1])
            return self.shown[n - 1] if 0 < n <= len(self.shown) else f"<nothing shown at {n}>"
        if isinstance(want, list):
            return [self._resolve(w) for w in want]
        return want

    @property
    def answer_in_language(self) -> bool:
        """A Chinese question gets a Chinese answer (English titles inside it allowed)."""
        if self.row["lang"] != "zh":
            return True
        return len(_CJK.findall(self.answer)) >= 2

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.row["id"], "lang": self.row["lang"], "role": self.row["role"], "text": self.row["text"],
                "expect": self.expect, "tool": self.tool, "args": self.args, "refused": self.refused,
                "reply_kind": self.reply_kind, "route_ok": self.route_ok, "args_ok": self.args_ok,
                "mismatches": self.arg_mismatches() if self.route_ok else [], "answer": self.answer,
                "claims": self.claims, "phrased_by": self.phrased_by, "replaced": self.replaced,
                "first_token_s": self.first_token_s, "total_s": round(self.total_s, 3), "error": self.error}


def _matches(want: Any, got: Any) -> bool:
    if want == "$any":
        return got not in (None, "", [])
    if isinstance(want, list):
        got_list = got if isinstance(got, list) else [got]
        return all(any(_same(w, g) for g in got_list) for w in want)
    return _same(want, got)


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want == got
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return float(want) == float(got)
    return str(want).strip().lower() == str(got).strip().lower() if got is not None else False


# ------------------------------------------------------------------ running

def run_row(app: Any, row: dict[str, Any], *, phrasing: bool, mode: str = "router", llm: Any = None) -> Outcome:
    """One row in a fresh session: its setup turns (never phrased), then the turn."""
    from tastebud.agent.agent import Agent
    from tastebud.agent.roles import Principal

    principal = Principal.of(row["role"], row.get("user"))
    agent = Agent(app, principal, mode=mode, phrasing=False, llm=llm)
    out = Outcome(row)
    try:
        for text in row.get("setup", []):
            agent.ask(text)
        out.shown = [s["item_id"] for s in agent.session.shown]
        agent.phrasing = phrasing
        t0 = time.perf_counter()
        turn = agent.ask(row["text"])
        out.total_s = time.perf_counter() - t0
    except Exception as exc:  # a crash is a wrong answer, with its reason
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    first = turn.tool_calls[0] if turn.tool_calls else None
    out.tool = first.name if first else None
    out.args = dict(first.args) if first else {}
    out.refused = bool(first and first.refused)
    out.reply_kind = turn.reply_kind
    out.answer = turn.answer
    out.calls = [c.as_dict() for c in turn.tool_calls]
    out.results = [c.result for c in turn.tool_calls if c.ok]
    out.out_of_role = [c.name for c in turn.tool_calls if c.ok and not principal.allows(c.name)]
    out.claims = turn.claims
    out.phrased_by = turn.phrased_by
    out.replaced = turn.replaced
    out.first_token_s = turn.first_token_s
    return out


def run_all(app: Any, rows: list[dict[str, Any]], *, phrasing: bool, mode: str = "router", llm: Any = None,
            progress: Any = None) -> list[Outcome]:
    outcomes = []
    for n, row in enumerate(rows, 1):
        outcomes.append(run_row(app, row, phrasing=phrasing, mode=mode, llm=llm))
        if progress is not None:
            progress(n, len(rows), outcomes[-1])
    return outcomes


# ------------------------------------------------------------------ summary

def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _intent(row: dict[str, Any]) -> str:
    e = row["expect"]
    return e["tool"] if e.get("tool") else f"reply:{e.get('reply')}"


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    by_lang: dict[str, list[Outcome]] = defaultdict(list)
    by_intent: dict[str, list[Outcome]] = defaultdict(list)
    by_role: dict[str, list[Outcome]] = defaultdict(list)
    by_tag: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_lang[o.row["lang"]].append(o)
        by_intent[_intent(o.row)].append(o)
        by_role[o.row["role"]].append(o)
        for t in o.row.get("tags", []):
            by_tag[t].append(o)

    def block(group: list[Outcome]) -> dict[str, Any]:
        return {"n": len(group), "routing": _rate([o.route_ok for o in group]), "args": _rate([o.args_ok for o in group])}

    phrased = [o for o in outcomes if o.phrased_by == "llm" or o.replaced]
    checked = sum(int(o.claims.get("checked", 0) or 0) for o in outcomes)
    dropped = sum(len(o.claims.get("dropped", []) or []) for o in outcomes)
    totals = sorted(o.total_s for o in outcomes if o.error is None)
    firsts = sorted(o.first_token_s for o in outcomes if o.first_token_s is not None)
    injections = [o for o in outcomes if {"injection", "planted"} & set(o.row.get("tags", []))]
    return {
        "rows": len(outcomes),
        "routing": _rate([o.route_ok for o in outcomes]),
        "args": _rate([o.args_ok for o in outcomes]),
        "by_language": {k: block(v) for k, v in sorted(by_lang.items())},
        "by_intent": {k: block(v) for k, v in sorted(by_intent.items())},
        "by_role": {k: block(v) for k, v in sorted(by_role.items())},
        "by_tag": {k: block(v) for k, v in sorted(by_tag.items())},
        "refusals_correct": _rate([o.route_ok for o in outcomes if o.expect.get("refused")
                                   or o.expect.get("reply") == "own_data"]),
        "out_of_role_tool_runs": sum(len(o.out_of_role) for o in outcomes),
        # a change the caller's own words did not ask for (a row may ask for feedback on a planted item)
        "side_effects_from_injections": sum(1 for o in injections
                                            if any(c["name"] in SIDE_EFFECT_TOOLS and c["ok"] and c["name"] != o.expect.get("tool")
                                                   for c in o.calls)),
        "chinese_answers_in_chinese": _rate([o.answer_in_language for o in by_lang.get("zh", [])]),
        "claims": {"checked": checked, "dropped": dropped},
        "phrased_by_llm": sum(1 for o in outcomes if o.phrased_by == "llm"),
        "fallback_rate": _rate([o.replaced for o in phrased]) if phrased else None,
        "errors": [f"{o.row['id']}: {o.error}" for o in outcomes if o.error],
        "latency_s": {"total_p50": _pct(totals, 50), "total_p95": _pct(totals, 95),
                      "first_token_p50": _pct(firsts, 50), "first_token_p95": _pct(firsts, 95)},
        "wrong": [f"{o.row['id']} [{o.row['lang']}/{o.row['role']}] {o.row['text']!r}: want {_intent(o.row)}"
                  f"{' refused' if o.expect.get('refused') else ''}, got {o.tool or 'reply:' + str(o.reply_kind)}"
                  f"{' refused' if o.refused else ''}"
                  + ("; " + "; ".join(o.arg_mismatches()) if o.route_ok and not o.args_ok else "")
                  for o in outcomes if not o.args_ok],
    }


def _pct(xs: list[float], q: int) -> float | None:
    if not xs:
        return None
    if len(xs) == 1:
        return round(xs[0], 3)
    return round(statistics.quantiles(xs, n=100, method="inclusive")[q - 1], 3)
