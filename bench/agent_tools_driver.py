"""The tool-calling driver (LangChain ``create_agent``) with the embedded model:
does it pick the right tool, and how long does a turn take?

    .venv/bin/python bench/agent_tools_driver.py [--driver tools|router] [--base-url URL --api-key KEY] [--json]

20 plain English rows of bench/data/conversations.jsonl (recommend, profile,
history, search, explain, recommendation log; one end user each, no setup
turns), run in the agent test home (tests/agent_helpers.py) through
``Agent(mode=...)``. The model is the embedded Qwen2.5-Coder-0.5B behind
llama-cpp-python's server (chat format chatml-function-calling); a server is
started unless --base-url/--api-key name a running one. Answers are capped at
110 tokens (the router driver's cap). Scoring is tests/conversations.py's:
the turn's first tool call against the row's expected tool (routing) and key
arguments (args). Per turn: HTTP requests to the model, prompt tokens, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

IDS = ["en-001", "en-002", "en-003", "en-011", "en-012",  # recommend
       "en-042", "en-043", "en-044", "en-047",            # get_profile
       "en-054", "en-055", "en-058", "en-059",            # get_history
       "en-065", "en-066", "en-067", "en-070",            # search_items
       "en-034", "en-035",                                # explain
       "en-089"]                                          # recommendation_log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", choices=("tools", "router"), default="tools")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print

    import httpx

    from tastebud.embedded import EmbeddedServer, ensure_model
    from tastebud.llm import Endpoint, connect
    from tastebud.retrieval.embedder import SentenceTransformerEmbedder
    from tests.agent_helpers import build_home, make_app
    from tests.conversations import load, run_row

    rows = {r["id"]: r for r in load()}
    rows = [rows[i] for i in IDS if i in rows]
    with tempfile.TemporaryDirectory(prefix="tastebud-bench-tools-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        os.environ["TASTEBUD_HOME"] = str(home)
        embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        build_home(home, embedder, Path(tmp) / "slice")
        server = None
        if args.base_url:
            endpoint = Endpoint(args.base_url, "qwen2.5-coder-0.5b-instruct", args.api_key or "x", 0, 1)
        else:
            # the GGUF the llm-marked tests keep in pytest's cache (assembled there if missing)
            server = EmbeddedServer(ensure_model(ROOT / ".pytest_cache" / "d" / "tastebud-models")).start()
            endpoint = Endpoint(server.base_url, server.alias, server.api_key, 0, 1)
        usage: list[dict] = []

        def on_response(resp: httpx.Response) -> None:
            resp.read()
            body = resp.json() if resp.status_code == 200 and "json" in resp.headers.get("content-type", "") else {}
            usage.append({"status": resp.status_code, "prompt_tokens": (body.get("usage") or {}).get("prompt_tokens", 0)})

        llm = connect(endpoint, "embedded", timeout=300, max_tokens=110, temperature=0,
                      http_client=httpx.Client(timeout=300, event_hooks={"response": [on_response]}))
        app = make_app(home, embedder, llm)
        out = []
        try:
            for n, row in enumerate(rows, 1):
                usage.clear()
                o = run_row(app, row, phrasing=True, mode=args.driver, llm=llm)
                rec = {**o.as_dict(), "requests": len(usage), "http_errors": sum(u["status"] != 200 for u in usage),
                       "prompt_tokens": sum(u["prompt_tokens"] for u in usage)}
                out.append(rec)
                mark = "ok " if o.args_ok else ("arg" if o.route_ok else "BAD")
                say(f"[{n:2d}/{len(rows)}] {mark} {row['id']} {o.total_s:5.1f}s {rec['requests']} req "
                    f"{rec['prompt_tokens']:5d} tok  want {row['expect']['tool']}, got {o.tool} {o.args} "
                    f"refused={o.refused} · {o.answer[:60]!r}")
        finally:
            app.close()
            if server is not None:
                server.stop()
    totals = sorted(r["total_s"] for r in out)
    summary = {
        "driver": args.driver, "rows": len(out),
        "right_tool": sum(r["route_ok"] for r in out), "right_args": sum(r["args_ok"] for r in out),
        "no_tool_call": sum(r["tool"] is None for r in out), "refused": sum(bool(r["refused"]) for r in out),
        "phrased_by_llm": sum(r["phrased_by"] == "llm" for r in out), "replaced": sum(bool(r["replaced"]) for r in out),
        "errors": [r["error"] for r in out if r["error"]],
        "latency_s": {"p50": round(statistics.median(totals), 1), "p95": round(totals[max(0, round(0.95 * len(totals)) - 1)], 1),
                      "max": round(totals[-1], 1)} if totals else None,
        "requests_per_turn": round(statistics.mean(r["requests"] for r in out), 2) if out else None,
    }
    if args.json:
        print(json.dumps({"summary": summary, "turns": out}, indent=2, ensure_ascii=False))
    else:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
