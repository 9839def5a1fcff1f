"""Forget of one user in a ~100k-event home (issue 14: "under 2 s on this machine";
a bench figure, not a timed test).

Builds the home once through the real commands (bench/synth.py --events N, then
`tastebud ingest catalog/events`, `tastebud refresh --all --no-narratives`,
`tastebud index`), then, each on a fresh copy of it:
- `tastebud forget U --yes` as a whole process, for the heaviest user and a
  typical (median) one: wall time of the process, and the `seconds` it reports;
- the in-process `Privacy.forget` call, for the same two users;
- a raw baseline: a plain sqlite3 `DELETE FROM events WHERE user_id = ?` (with
  secure_delete on and the WAL truncated, as forget does) on a copy.
A process pays Python start-up and imports; the in-process figure is the work.

    .venv/bin/python bench/forget.py [--events 100000] [--work /tmp/forget-bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASTEBUD = Path(sys.executable).with_name("tastebud")


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(TASTEBUD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(TASTEBUD), *args], env=env_for(home), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"tastebud {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def build(work: Path, n_events: int) -> Path:
    template = work / "home"
    if (template / "tastebud.db").is_file() and (template / ".built").is_file():
        return template
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    subprocess.run([sys.executable, str(ROOT / "bench" / "synth.py"), "--events", str(n_events), "--out", str(data)],
                   check=True, capture_output=True)
    template.mkdir(parents=True)
    for step in (("ingest", "catalog", str(data / "catalog.csv")), ("ingest", "events", str(data / "events.csv")),
                 ("refresh", "--all", "--no-narratives"), ("index",)):
        t0 = time.perf_counter()
        run(template, *step)
        print(f"  built: tastebud {' '.join(step[:2])} {time.perf_counter() - t0:.1f} s", flush=True)
    (template / ".built").write_text("ok")
    return template


def pick_users(db: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        counts = conn.execute("SELECT user_id, COUNT(*) c FROM events GROUP BY user_id ORDER BY c DESC").fetchall()
        total = sum(c for _, c in counts)
    median = counts[len(counts) // 2]
    print(f"  home: {total:,} events, {len(counts):,} users; heavy {counts[0][0]} ({counts[0][1]:,} events), "
          f"typical {median[0]} ({median[1]:,} events)", flush=True)
    return {"heavy": counts[0], "typical": median}


def fresh_copy(template: Path, work: Path, name: str) -> Path:
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(template, dest)
    return dest


def process_forget(home: Path, user: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = run(home, "forget", user, "--yes", "--json")
    return time.perf_counter() - t0, json.loads(out.stdout)["seconds"]


def in_process_forget(home: Path, user: str) -> float:
    from tastebud.app import App
    from tastebud.settings import load_settings

    app = App(load_settings(home=home))
    try:
        _ = app.store, app.vectors  # opened before the clock: a server has them open already
        t0 = time.perf_counter()
        app.privacy.forget(user, requested_by="bench")
        return time.perf_counter() - t0
    finally:
        app.close()


def raw_delete(home: Path, user: str) -> float:
    t0 = time.perf_counter()
    conn = sqlite3.connect(home / "tastebud.db")
    try:
        conn.execute("PRAGMA secure_delete=ON")
        with conn:
            conn.execute("DELETE FROM events WHERE user_id = ?", (user,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tastebud-forget-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    os.environ.pop("TASTEBUD_DATABASE_URL", None)
    os.environ.pop("TASTEBUD_CHROMA_URL", None)
    print(f"forget bench: {args.events:,} events, {args.repeat} runs each, load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores", flush=True)
    template = build(args.work, args.events)
    users = pick_users(template / "tastebud.db")
    rows = []
    for label, (user, n) in users.items():
        figures: dict[str, list[float]] = {"process": [], "reported": [], "in_process": [], "raw_delete": []}
        for i in range(args.repeat):
            wall, reported = process_forget(fresh_copy(template, args.work, "run"), user)
            figures["process"].append(wall)
            figures["reported"].append(reported)
            # a folder of its own: chromadb keeps one client per path for the life of a process
            copy = fresh_copy(template, args.work, f"run-in-process-{label}-{i}")
            figures["in_process"].append(in_process_forget(copy, user))
            figures["raw_delete"].append(raw_delete(fresh_copy(template, args.work, "run"), user))
        rows.append((label, user, n, {k: statistics.median(v) for k, v in figures.items()},
                     {k: max(v) for k, v in figures.items()}))
    print(f"\n{'user':<8} {'events':>7} {'process':>9} {'(reported)':>11} {'in-process':>11} {'raw DELETE':>11}   median s (max)")
    for label, user, n, med, worst in rows:
        print(f"{label:<8} {n:>7,} {med['process']:>9.2f} {med['reported']:>11.2f} {med['in_process']:>11.2f} "
              f"{med['raw_delete']:>11.3f}   (max {worst['process']:.2f} / {worst['in_process']:.2f} / {worst['raw_delete']:.3f})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for path in args.work.glob("run*"):
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
