"""Cold CLI latency: the read-only commands as whole processes on a demo home.

    .venv/bin/python bench/cli_latency.py [--home PATH] [--runs 7] [--user 1] [--data DIR] [--json]

1. A demo home (--home, reused if it already holds the data; else a fresh
   temporary one): `ingest movielens DIR`, `refresh --all --no-narratives`,
   `index` and `train-ranker` (--no-ranker: not), as scripts/demo.sh does (not timed;
   several minutes on 2 cores),
   then one `recommend USER -k 10` so the log holds a list and the item-side
   cache exists; its top item is the one `why` asks about.
2. Each command once untimed (warms the OS file cache and the item-side cache:
   "cold" here means a new process, as a support person runs it, not a cold
   disk), and once under `python -X importtime` to record which of torch,
   sentence_transformers, transformers and chromadb it imported.
3. --runs rounds; in each, every command as a new process, in turn (so other
   load on the machine hits them all alike): `why USER ITEM`, `profile show USER`,
   `recommend USER -k 10` (with the ranker, and with TASTEBUD_RANKER=off), `status`,
   `quarantine list`; next to two baselines
   in the same rounds: a raw interpreter start (`python -c "import sqlite3"`) and
   `tastebud --help` (the CLI's own floor: Typer, settings, command modules);
   and, for scale, `recommend USER -k 10 --intent ...`, which must load the
   embedding model. Wall time of each process; median and min per command.

Targets (issue 13): cold `why` under 1 s and `recommend -k 10` under 1.5 s,
medians on the demo home. On a shared machine compare the medians with the
baselines of the same run rather than across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _harness import run_in_home  # noqa: E402  (bench/ is on sys.path as the script's folder)
from tastebud.retrieval.ranker_files import ranker_dir, ranker_state  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

PYTHON = sys.executable
HEAVY = ("torch", "sentence_transformers", "transformers", "chromadb")
INTENT = "something light and funny"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--home", default=None, help="use (and keep) this home instead of a temporary one")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (each command once per round)")
    parser.add_argument("--user", default="1")
    parser.add_argument("--no-intent", action="store_true", help="skip the model-loading comparison")
    parser.add_argument("--no-ranker", action="store_true", help="do not train the learned ranker on a new home")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run_in_home(args, "tastebud-bench-cli-", run)
    return 0


def tastebud(*argv: str) -> list[str]:
    """The installed console script, run by this interpreter (so -X flags can be added)."""
    script = Path(PYTHON).parent / "tastebud"
    return [PYTHON, str(script), *argv] if script.is_file() else [PYTHON, "-m", "tastebud.cli.main", *argv]


def call(cmd: list[str], say) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        say(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return done.stdout


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return took


def heavy_imports(cmd: list[str]) -> list[str]:
    """Which HEAVY top-level packages the process imported (from -X importtime)."""
    env = cmd[:2] if cmd[0] == "env" else []  # ["env", "NAME=value"]: a setting for this command only
    cmd = cmd[len(env):]
    done = subprocess.run([*env, cmd[0], "-X", "importtime", *cmd[1:]], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seen = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [m for m in HEAVY if m in seen]


def build_home(args, home: Path, say) -> None:
    status = json.loads(call(tastebud("status", "--json"), say))
    if not status.get("events"):
        t = time.perf_counter()
        call(tastebud("ingest", "movielens", args.data), say)
        call(tastebud("refresh", "--all", "--no-narratives"), say)
        call(tastebud("index"), say)
        say(f"demo home built in {time.perf_counter() - t:.0f} s (ingest, refresh --all --no-narratives, index)")
    if not args.no_ranker and ranker_state(ranker_dir(home))["state"] != "in use":  # none yet, or an older one
        t = time.perf_counter()
        call(tastebud("train-ranker"), say)
        say(f"ranker trained in {time.perf_counter() - t:.0f} s, as scripts/demo.sh does")


def run(args, home: Path, say) -> dict:
    build_home(args, home, say)
    user = args.user
    rec = json.loads(call(tastebud("recommend", user, "-k", "10", "--json"), say))
    item = rec["items"][0]["item_id"]
    commands = {
        "baseline: python -c 'import sqlite3'": [PYTHON, "-c", "import sqlite3"],
        "baseline: tastebud --help": tastebud("--help"),
        f"why {user} {item}": tastebud("why", user, item),
        f"profile show {user}": tastebud("profile", "show", user),
        f"recommend {user} -k 10": tastebud("recommend", user, "-k", "10"),
        f"recommend {user} -k 10, the blend (ranker off)": ["env", "TASTEBUD_RANKER=off",
                                                            *tastebud("recommend", user, "-k", "10")],
        "status": tastebud("status"),
        "quarantine list": tastebud("quarantine", "list"),
    }
    if not args.no_intent:
        commands[f"recommend {user} -k 10 --intent (loads the model)"] = tastebud("recommend", user, "-k", "10",
                                                                                 "--intent", INTENT)
    imported = {}
    for name, cmd in commands.items():
        timed(cmd)  # warm-up
        imported[name] = heavy_imports(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
        say(f"round {round_ + 1}/{args.runs}: " + ", ".join(f"{t[-1]:.2f}" for t in times.values()))
    load = os.getloadavg()
    result: dict = {"home": str(home) if args.home else "temporary", "user": user, "item": item, "runs": args.runs,
                    "loadavg_1_5_15": [round(x, 2) for x in load], "cpus": os.cpu_count(), "commands": {}}
    say(f"\nwhole processes, {args.runs} runs each (load average {load[0]:.1f} on {os.cpu_count()} CPUs)")
    say(f"{'command':58} {'median s':>9} {'min s':>7} {'max s':>7}  heavy imports")
    for name, ts in times.items():
        row = {"median_s": round(statistics.median(ts), 3), "min_s": round(min(ts), 3), "max_s": round(max(ts), 3),
               "runs_s": [round(t, 3) for t in ts], "heavy_imports": imported[name]}
        result["commands"][name] = row
        say(f"{name:58} {row['median_s']:9.2f} {row['min_s']:7.2f} {row['max_s']:7.2f}  "
            f"{', '.join(imported[name]) or '-'}")
    targets = {f"why {user} {item}": 1.0, f"recommend {user} -k 10": 1.5}
    result["targets"] = {}
    for name, limit in targets.items():
        med = result["commands"][name]["median_s"]
        result["targets"][name] = {"limit_s": limit, "median_s": med, "met": med < limit}
        say(f"target: {name} median {med:.2f} s {'<' if med < limit else '>='} {limit} s")
    return result


if __name__ == "__main__":
    sys.exit(main())
