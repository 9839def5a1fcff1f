"""How each cost grows with the event stream: 10k, 100k and 1M synthetic events.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--seed 7] [--rec-users 100]
                                    [--live-seconds 20] [--live-rate 20] [--out bench/results] [--merge]

For each size, bench/synth.py writes a stream and catalog, then, in a fresh
temporary TASTEBUD_HOME, each step runs as its own process (so its peak RSS is
its own, read with os.wait4, or from /proc for the server):

- ingest: `tastebud ingest catalog`, then `tastebud ingest events` (the time is the events');
- index: `tastebud index` (item vectors into Chroma);
- refresh: `tastebud refresh --all --no-narratives` (computed profiles and their vectors);
- item side: co-occurrence, popularity and near-duplicates built from the store, as
  the service and the live item-side worker build them (and cached on disk);
- recommend: `RecommendationService.recommend` p50/p95 over --rec-users users, after one warm-up call;
- live: `tastebud serve`, paced clients posting events (bench/serve.py's Load) and its
  background probe: event -> new profile version, by the live thread alone.

With --no-vectors, index, profile vectors, the semantic parts and the live run
are left out (the refresh is the computed one, in a process of its own):
what is left grows with the events alone, and 1M fits a short run even where
the embedding model is slow (files scale-no-vectors.json/png).

Times are wall clock of the step as an operator sees it: a CLI step includes
the process start (imports; the embedding model for index and refresh), which
flattens the growth between small sizes. The table gives each cost at each
size and its growth exponent b between neighbouring sizes (cost ~ events^b);
the log-log plot (PNG) and every figure (JSON) are saved in --out. With
--merge, sizes already in the JSON and not rerun are kept, so 1M can be added
to an earlier 10k/100k run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

TASTEBUD = str(Path(sys.executable).with_name("tastebud"))
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
# (key, label, unit) of each cost in the table and the plot
COSTS = (("ingest_s", "ingest events", "s"), ("index_s", "index item vectors", "s"),
         ("refresh_s", "refresh --all --no-narratives", "s"), ("item_side_s", "item side build", "s"),
         ("recommend_p50_ms", "recommend p50", "ms"), ("recommend_p95_ms", "recommend p95", "ms"),
         ("live_p50_ms", "live event -> profile p50", "ms"), ("live_p95_ms", "live event -> profile p95", "ms"))
PEAKS = (("ingest", "ingest"), ("index", "index"), ("refresh", "refresh"), ("item_side", "item side"),
         ("recommend", "recommend"), ("serve", "serve (live)"))


# ---------------------------------------------------------------- child processes
def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one process; fails loudly."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout  # ru_maxrss is KiB on Linux


def last_json(stdout: str) -> dict:
    """The JSON document a command printed (after any progress lines)."""
    start = stdout.find("{")
    return json.loads(stdout[start:])


def step_item_side(vectors: bool = True) -> dict:
    """Child: build the item side from the store, as the live worker does (refresh_side)."""
    from tastebud.app import App
    from tastebud.retrieval.service import RecommendationService
    from tastebud.settings import load_settings

    app = App(load_settings())
    try:
        service = app.recommendations if vectors else RecommendationService(app.store, None, app.settings.blend)
        start = time.perf_counter()
        side = service.refresh_side()
        return {"seconds": round(time.perf_counter() - start, 3), "items": len(side.items),
                "pairs": int(side.similarity.nnz)}
    finally:
        app.close()


def step_computed_refresh() -> dict:
    """Child, --no-vectors: `refresh --all --no-narratives` without its profile-vector hook."""
    from tastebud.app import App
    from tastebud.profiles.interest import InterestConfig
    from tastebud.profiles.refresh import Refresher
    from tastebud.settings import load_settings

    app = App(load_settings())
    try:
        refresher = Refresher(app.store, InterestConfig.from_settings(app.settings))
        users = refresher.select_users(all_users=True)
        report = refresher.refresh(users, narratives=False)
        return {"users": report.users, "seconds": round(report.seconds, 3)}
    finally:
        app.close()


def step_recommend(n_users: int, seed: int, vectors: bool = True) -> dict:
    """Child: recommend latency over a sample of users with profiles (the item side is cached by now)."""
    from sqlalchemy import select

    from tastebud.app import App
    from tastebud.profiles.migrations import profile_heads
    from tastebud.settings import load_settings

    app = App(load_settings())
    try:
        with app.store.engine.connect() as conn:
            users = sorted(conn.execute(select(profile_heads.c.user_id)).scalars())
        chosen = random.Random(seed).sample(users, min(n_users, len(users)))
        if vectors:
            service = app.recommendations
        else:  # no semantic parts: what is left grows with events, not with the embedder
            from tastebud.retrieval.service import RecommendationService

            service = RecommendationService(app.store, None, app.settings.blend)
        start = time.perf_counter()
        service.recommend(chosen[0], 10, source="bench")
        first = time.perf_counter() - start
        times = []
        for user in chosen:
            t = time.perf_counter()
            service.recommend(user, 10, source="bench")
            times.append((time.perf_counter() - t) * 1000)
        return {"first_call_s": round(first, 3), **summary(times)}
    finally:
        app.close()


def summary(values: list[float]) -> dict:
    from serve import pct

    return {"n": len(values), "p50": round(pct(values, 50), 2) if values else None,
            "p95": round(pct(values, 95), 2) if values else None}


def vm_hwm_mib(pid: int) -> float | None:
    """Peak RSS of a running process (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- one size
def run_size(n: int, args, say) -> dict:
    import synth

    work = Path(tempfile.mkdtemp(prefix=f"tastebud-scale-{n}-"))
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env["TASTEBUD_HOME"] = str(home)
    os.environ.clear()
    os.environ.update(env)
    py = [sys.executable, str(Path(__file__).resolve())]
    res: dict = {"events": n, "load_before": round(os.getloadavg()[0], 2)}
    peaks: dict[str, float] = {}
    try:
        t = time.perf_counter()
        rep = synth.generate(work / "data", n, seed=args.seed)
        res.update(synth_s=round(time.perf_counter() - t, 1), users=rep.users, items=rep.items)
        say(f"[{n:,}] synth: {rep.users:,} users, {rep.items:,} items in {res['synth_s']} s")

        s_cat, rss_cat, out = run_child([TASTEBUD, "ingest", "catalog", rep.catalog_path, "--json"], env)
        s_ev, rss_ev, out = run_child([TASTEBUD, "ingest", "events", rep.events_path, "--json"], env)
        ingest = last_json(out)["events"]
        res.update(catalog_ingest_s=round(s_cat, 2), ingest_s=round(s_ev, 2), accepted=ingest["accepted"],
                   rejected=ingest["rejected"])
        peaks["ingest"] = max(rss_cat, rss_ev)
        say(f"[{n:,}] ingest: {ingest['accepted']:,} accepted, {ingest['rejected']} rejected in {s_ev:.1f} s, "
            f"peak {peaks['ingest']:.0f} MiB")

        novec = ["--no-vectors"] if args.no_vectors else []
        if not args.no_vectors:
            s, peaks["index"], _ = run_child([TASTEBUD, "index", "--json"], env)
            res["index_s"] = round(s, 2)
            say(f"[{n:,}] index: {s:.1f} s, peak {peaks['index']:.0f} MiB")
            s, peaks["refresh"], out = run_child([TASTEBUD, "refresh", "--all", "--no-narratives", "--json"], env)
            report = last_json(out)
        else:
            s, peaks["refresh"], out = run_child(py + ["--step", "computed-refresh"], env)
            report = json.loads(out)
        res.update(refresh_s=round(s, 2), refresh_users=report["users"], refresh_inner_s=round(report["seconds"], 2))
        say(f"[{n:,}] refresh: {report['users']:,} users in {s:.1f} s ({report['seconds']:.1f} s inside), "
            f"peak {peaks['refresh']:.0f} MiB")

        s, peaks["item_side"], out = run_child(py + ["--step", "item-side"] + novec, env)
        side = json.loads(out)
        res.update(item_side_s=side["seconds"], item_side_pairs=side["pairs"])
        say(f"[{n:,}] item side: {side['seconds']:.1f} s ({side['pairs']:,} neighbour pairs), "
            f"peak {peaks['item_side']:.0f} MiB")

        s, peaks["recommend"], out = run_child(py + ["--step", "recommend", "--rec-users", str(args.rec_users),
                                                     "--seed", str(args.seed)] + novec, env)
        rec = json.loads(out)
        res.update(recommend_p50_ms=rec["p50"], recommend_p95_ms=rec["p95"], recommend_first_s=rec["first_call_s"],
                   recommend_n=rec["n"])
        say(f"[{n:,}] recommend: p50 {rec['p50']} ms, p95 {rec['p95']} ms over {rec['n']} users "
            f"(first call {rec['first_call_s']} s), peak {peaks['recommend']:.0f} MiB")

        if args.no_vectors:  # the live path writes profile vectors: it belongs to the full run
            res["peak_rss_mib"] = {k: round(v, 1) for k, v in peaks.items() if v is not None}
            return res
        live = run_live(home, env, rep.users, rep.items, args)
        peaks["serve"] = live.pop("peak_mib")
        res.update(live)
        say(f"[{n:,}] live: event -> new profile version p50 {live['live_p50_ms']} ms, p95 {live['live_p95_ms']} ms "
            f"(n={live['live_n']}, {live['live_events_per_s']} events/s posted, server ready in "
            f"{live['serve_ready_s']} s), server peak {peaks['serve']:.0f} MiB")
        res["peak_rss_mib"] = {k: round(v, 1) for k, v in peaks.items() if v is not None}
        res["load_after"] = round(os.getloadavg()[0], 2)
        res["home_mib"] = round(sum(f.stat().st_size for f in home.rglob("*") if f.is_file()) / 2**20, 1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"[{n:,}] kept {work}")
    return res


def run_live(home: Path, env: dict, n_users: int, n_items: int, args) -> dict:
    """bench/serve.py's server and load, paced, with only the background probe."""
    from serve import Load, Server

    _, _, out = run_child([TASTEBUD, "keys", "create", "--role", "operator", "--name", "scale"], env)
    key = out.strip().splitlines()[-1]
    server = Server(home, narratives=False)
    peak, load, ready = None, None, 0.0
    try:
        ready = server.wait_ready(timeout=600)
        clients = 2
        batch = 5
        interval = batch * clients / args.live_rate
        load = Load(server.base_url, key, [f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)],
                    batch, interval)
        threads = [threading.Thread(target=load.run_client, args=(i,)) for i in range(clients)]
        threads.append(threading.Thread(target=load.run_probe, args=(load.probe_background, home / "tastebud.db", 99)))
        start = time.perf_counter()
        for t in threads:
            t.start()
        load.stop.wait(args.live_seconds)
        load.stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        peak = vm_hwm_mib(server.proc.pid)
    finally:
        server.stop()
    if load is None or load.errors:
        raise SystemExit(f"live run errors: {load and load.errors} {load and load.error_samples}")
    bg = summary(load.background_ms)
    return {"live_p50_ms": bg["p50"], "live_p95_ms": bg["p95"], "live_n": bg["n"],
            "live_events_per_s": round(load.accepted / elapsed, 1), "serve_ready_s": round(ready, 1),
            "live_post_p95_ms": summary(load.post_ms)["p95"], "live_recs_p95_ms": summary(load.rec_ms)["p95"],
            "peak_mib": peak}


# ---------------------------------------------------------------- report
def exponent(a: float | None, b: float | None, n1: int, n2: int) -> float | None:
    if not a or not b or a <= 0 or b <= 0:
        return None
    return math.log(b / a) / math.log(n2 / n1)


def table(sizes: dict[int, dict]) -> str:
    ns = sorted(sizes)
    head = f"{'cost':<34}" + "".join(f"{n:>12,}" for n in ns)
    head += "".join(f"{f'b {short(a)}-{short(b)}':>14}" for a, b in zip(ns, ns[1:]))
    lines = [head, "-" * len(head)]

    def row(label: str, values: list, fmt: str) -> str:
        cells = "".join(f"{format(v, fmt) if v is not None else '-':>12}" for v in values)
        growth = "".join(f"{format(e, '.2f') if e is not None else '-':>14}" for e in
                         (exponent(x, y, a, b) for (x, y), (a, b) in zip(zip(values, values[1:]), zip(ns, ns[1:]))))
        return f"{label:<34}{cells}{growth}"

    lines.append(row("users", [sizes[n].get("users") for n in ns], ","))
    lines.append(row("items", [sizes[n].get("items") for n in ns], ","))
    for key, label, unit in COSTS:
        lines.append(row(f"{label} ({unit})", [sizes[n].get(key) for n in ns], ".2f" if unit == "s" else ".1f"))
    lines.append("peak RSS (MiB)")
    for key, label in PEAKS:
        lines.append(row(f"  {label}", [sizes[n].get("peak_rss_mib", {}).get(key) for n in ns], ".0f"))
    return "\n".join(lines)


def short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def plot(sizes: dict[int, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(sizes)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    for key, label, unit in COSTS:
        pts = [(n, sizes[n][key] / (1000 if unit == "ms" else 1)) for n in ns if sizes[n].get(key)]
        if pts:
            left.plot(*zip(*pts), marker="o", label=label)
    if ns:  # a slope-1 guide through the ingest time at the smallest size
        base = sizes[ns[0]].get("ingest_s") or 1.0
        left.plot(ns, [base * n / ns[0] for n in ns], linestyle=":", color="grey", label="linear (slope 1)")
    left.set(xscale="log", yscale="log", xlabel="events", ylabel="seconds", title="cost of each step")
    left.legend(fontsize=7)
    for key, label in PEAKS:
        pts = [(n, sizes[n]["peak_rss_mib"][key]) for n in ns if sizes[n].get("peak_rss_mib", {}).get(key)]
        if pts:
            right.plot(*zip(*pts), marker="o", label=label)
    right.set(xscale="log", yscale="log", xlabel="events", ylabel="MiB", title="peak RSS of each step")
    right.legend(fontsize=7)
    fig.suptitle("tastebud at scale (bench/scale.py; 2 shared cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="event counts, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rec-users", type=int, default=100, help="users sampled for recommend latency")
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--live-rate", type=float, default=20.0, help="events/s posted during the live run")
    parser.add_argument("--out", default=str(BENCH / "results"), help="folder for scale.json and scale.png")
    parser.add_argument("--merge", action="store_true", help="keep sizes already in scale.json that are not rerun")
    parser.add_argument("--keep", action="store_true", help="keep each size's data and home")
    parser.add_argument("--no-vectors", action="store_true",
                        help="leave out every embedding (index, profile vectors, semantic parts, live): "
                             "the steps whose cost follows the events alone")
    parser.add_argument("--step", choices=("item-side", "recommend", "computed-refresh"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step == "item-side":
        print(json.dumps(step_item_side(not args.no_vectors)))
        return 0
    if args.step == "recommend":
        print(json.dumps(step_recommend(args.rec_users, args.seed, not args.no_vectors)))
        return 0
    if args.step == "computed-refresh":
        print(json.dumps(step_computed_refresh()))
        return 0

    out = Path(args.out)
    stem = "scale-no-vectors" if args.no_vectors else "scale"
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    sizes: dict[int, dict] = {}
    if args.merge and json_path.is_file():
        sizes = {int(k): v for k, v in json.loads(json_path.read_text())["sizes"].items()}
    command = "bench/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    for n in (int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()):
        start = time.perf_counter()
        sizes[n] = run_size(n, args, say)
        sizes[n]["total_s"] = round(time.perf_counter() - start, 1)
        out.mkdir(parents=True, exist_ok=True)  # saved after every size: a long run keeps what it finished
        json_path.write_text(json.dumps({"command": command, "cpus": os.cpu_count(),
                                         "sizes": {str(k): v for k, v in sorted(sizes.items())}}, indent=2) + "\n")
    print()
    print(table(sizes))
    plot(sizes, png_path)
    print(f"\nsaved {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
