"""Load test of `tastebud serve` from a second process on loopback.

    .venv/bin/python bench/serve.py [DIR] [--seconds 60] [--clients 4] [--batch 5] [--rate EVENTS_PER_S]
                                    [--reads 1] [--warmup 10] [--workers 1] [--narratives] [--new-users N]
                                    [--status-every S] [--set NAME=VALUE] [--home PATH] [--json]

1. A fresh temporary TASTEBUD_HOME (or --home, reused if it already holds the
   data), set up with the CLI as an operator would: `tastebud ingest movielens
   DIR`, `tastebud refresh --all --no-narratives`, `tastebud index`, `tastebud
   keys create --role operator`.
2. `tastebud serve` on a free loopback port, as a subprocess, waited for until
   ready and until its live thread has warmed the interest states of the most
   recently active users (what a long-running server holds; a restart builds
   them in the background). Narratives are
   off unless --narratives (then the embedded LLM writes them in the
   background); chat phrasing is off (nothing here chats, and the model would
   take CPU from the server); the per-key rate limit is lifted, since every
   client here shares the one operator key.
3. From this process, --clients threads (httpx, a new connection per request, so
   requests spread over --workers as behind a load balancer) for --warmup seconds (default
   10: first touches of interest states and caches, not recorded) and then
   --seconds (recorded): each loops
   posting a batch of --batch events (ratings, views, clicks of random items)
   for a random user, then reading recommendations (k=10) for another random
   user (--reads per POST on average: 0 loads the write and background path
   only, the probes still read); as fast as they can (a saturating closed
   loop), or paced to --rate events/s in all. Next to them three probe threads measure freshness, one
   probe each, again and again:
   - dislike: the top recommended item of a user, disliked, then recommendations
     read until it is gone (event to updated recommendation);
   - background: a rating, then the profile head polled in the database from
     this process (no API read, so no read-your-writes refresh) until it covers
     the event (event to new profile version, by the live thread alone);
   - read-your-writes: a rating, then one GET of the profile; by the time it
     answers, the profile head must cover the event (an error otherwise).
4. The server gets SIGTERM and must shut down gracefully. Then two raw
   baselines in this process for context: `RecommendationService.recommend`
   called directly on the same home for the same kind of random users, and a
   raw sqlite3 insert rate of the same event batches into a scratch database
   with the store's schema and pragmas (one commit per batch).

Reports events/s accepted, request latencies (p50/p95/p99), the freshness
figures, errors (any non-200, any rejected event, any read of a profile that
did not cover an accepted event, reported as `stale_read`; exit 1 if there is
one) and the ratios to the baselines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _harness import run_in_home  # noqa: E402  (bench/ is on sys.path as the script's folder)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

TASTEBUD = str(Path(sys.executable).with_name("tastebud"))
PROBE_PAUSE_S = 0.5  # between two runs of one probe: the probes measure the load, they are not part of it


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), **{f"p{q}": round(pct(values, q), 2) if values else None for q in (50, 95, 99)},
            "max": round(max(values), 2) if values else None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=5, help="events per POST /v1/events")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s of all clients together (0 = as fast as they can)")
    parser.add_argument("--reads", type=float, default=1.0,
                        help="recommendation reads per POST, on average (0: events only, the background path's load)")
    parser.add_argument("--narratives", action="store_true", help="let the server write narratives in the background")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of the same load before anything is recorded (interest states, caches)")
    parser.add_argument("--workers", type=int, default=1, help="`tastebud serve --workers`")
    parser.add_argument("--status-every", type=float, default=0.0,
                        help="seconds between GET /v1/status samples of the answering worker's memory and frozen "
                             "heap during the recorded window (0: none); a soak run's record")
    parser.add_argument("--new-users", type=int, default=0,
                        help="also send events to this many users the home has never seen (bench-1 ...): with many "
                             "users, each history grows less over a long run, as in a service with a large audience")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the server, as TASTEBUD_NAME (the bench clears every TASTEBUD_* of its own environment)")
    parser.add_argument("--home", default=None, help="use (and keep) this home instead of a temporary one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    result = run_in_home(args, "tastebud-bench-serve-", run)
    return 1 if result["errors"]["total"] else 0


def cli(*argv: str) -> str:
    done = subprocess.run([TASTEBUD, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tastebud {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def setup(args, home: Path, say) -> dict:
    timings = {}
    if not (home / "tastebud.db").exists():
        for name, argv in (("ingest_s", ("ingest", "movielens", args.data)),
                           ("refresh_s", ("refresh", "--all", "--no-narratives")),
                           ("index_s", ("index",))):
            t = time.perf_counter()
            cli(*argv)
            timings[name] = round(time.perf_counter() - t, 1)
            say(f"tastebud {' '.join(argv)}: {timings[name]} s")
    timings["key"] = cli("keys", "create", "--role", "operator", "--name", "bench").strip().splitlines()[-1]
    return timings


class Server:
    """`tastebud serve` as a subprocess; its log goes to a file in the home."""

    def __init__(self, home: Path, narratives: bool, workers: int = 1, settings: dict[str, str] | None = None):
        self.port = free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(TASTEBUD_SERVE_NARRATIVES=str(narratives).lower(), TASTEBUD_API_CHAT_PHRASING="false",
                   TASTEBUD_API_RATE_LIMIT_PER_S="1000000", TASTEBUD_API_RATE_BURST="1000000")
        env.update({f"TASTEBUD_{name.upper()}": value for name, value in (settings or {}).items()})
        self.log_path = home / "bench-serve.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([TASTEBUD, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", str(workers)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> float:
        import httpx

        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with {self.proc.returncode}; see {self.log_path}:\n"
                                 + self.log_path.read_text()[-3000:])
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready within {timeout:.0f} s")

    def wait_warm(self, key: str, timeout: float = 600.0) -> float:
        """Until the live threads have warmed the interest states a restarted server
        builds ahead of events (GET /v1/status: live.warming_users), as a
        long-running server is before the load that matters. Any worker may answer
        a request, so it takes 2 x workers answers in a row with nothing left to warm."""
        import httpx

        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < timeout:
            r = httpx.get(f"{self.base_url}/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            warm = r.status_code == 200 and not r.json().get("live", {}).get("live", {}).get("warming_users")
            done = done + 1 if warm else 0
            if done >= 2 * self.workers:
                return time.perf_counter() - start
            time.sleep(0.5)
        raise SystemExit(f"the server was still warming after {timeout:.0f} s")

    def stop(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9
        finally:
            self.log.close()


class Load:
    def __init__(self, base_url: str, key: str, users: list[str], items: list[str], batch: int, interval: float,
                 reads: float = 1.0):
        self.base_url, self.key, self.users, self.items, self.batch = base_url, key, users, items, batch
        self.reads = reads  # recommendation reads per POST, on average
        self.interval = interval  # seconds between one client's POSTs (0 = no pause)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.post_ms: list[float] = []
        self.rec_ms: list[float] = []
        self.accepted = 0
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.dislike_ms: list[float] = []
        self.background_ms: list[float] = []
        self.background_at: list[float] = []  # when each background probe was posted (perf_counter s)
        self.ryw_ms: list[float] = []
        self.versions_changed = 0
        self.n = 0
        self.run_id = f"{int(time.time()):x}"  # event ids unique across runs on one --home

    def reset(self) -> None:
        """Forget what was measured so far (the end of the warm-up)."""
        with self.lock:
            self.post_ms, self.rec_ms, self.dislike_ms, self.background_ms, self.ryw_ms = [], [], [], [], []
            self.background_at = []
            self.accepted, self.versions_changed = 0, 0
            self.errors, self.error_samples = {}, []

    def client(self):
        import httpx

        # a connection per request: a kept-alive connection stays with the worker that
        # accepted it, so with --workers a few connections would load the workers unevenly;
        # this way the kernel spreads requests as a load balancer in front of them would
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60,
                            limits=httpx.Limits(max_keepalive_connections=0))

    def error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{kind}: {detail[:300]}")

    def event(self, rng: random.Random, user: str, tag: str, **fields) -> dict:
        with self.lock:
            self.n += 1
            n = self.n
        kind = fields.pop("type", None) or rng.choices(("rating", "view", "click"), (7, 2, 1))[0]
        event = {"event_id": f"bench-{self.run_id}-{tag}-{n}", "user_id": user, "item_id": fields.pop("item_id", None) or rng.choice(self.items),
                 "type": kind, "timestamp": int(time.time() * 1000)}
        if kind == "rating":
            event["value"] = fields.pop("value", None) or rng.choice([0.5 * i for i in range(1, 11)])
        return event

    def post(self, http, events: list[dict]) -> bool:
        t = time.perf_counter()
        try:
            r = http.post("/v1/events", json={"events": events})
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            self.error("post", f"{type(exc).__name__}: {exc}")
            return False
        ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200 or r.json().get("accepted") != len(events):
            self.error("post", f"HTTP {r.status_code}: {r.text}")
            return False
        with self.lock:
            self.post_ms.append(ms)
            self.accepted += len(events)
        return True

    def recommend(self, http, user: str, record: bool = True) -> list[str] | None:
        t = time.perf_counter()
        try:
            r = http.get(f"/v1/users/{user}/recommendations", params={"k": 10})
        except Exception as exc:  # noqa: BLE001
            self.error("recommend", f"{type(exc).__name__}: {exc}")
            return None
        ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            self.error("recommend", f"HTTP {r.status_code}: {r.text}")
            return None
        if record:
            with self.lock:
                self.rec_ms.append(ms)
        return [it["item_id"] for it in r.json()["items"]]

    def run_client(self, index: int) -> None:
        rng = random.Random(index)
        next_at = time.perf_counter() + rng.random() * self.interval  # clients out of step
        owed = 0.0  # reads owed: --reads per POST on average
        with self.client() as http:
            while not self.stop.is_set():
                if self.interval and self.stop.wait(max(0.0, next_at - time.perf_counter())):
                    break
                next_at += self.interval
                user = rng.choice(self.users)
                self.post(http, [self.event(rng, user, f"c{index}") for _ in range(self.batch)])
                owed += self.reads
                while owed >= 1.0:
                    owed -= 1.0
                    self.recommend(http, rng.choice(self.users))

    # ---- freshness probes -------------------------------------------------------------
    def probes(self) -> list:
        return [self.probe_dislike, self.probe_background, self.probe_read_your_writes]

    def run_probe(self, probe, db_path: Path, seed: int) -> None:
        rng = random.Random(seed)
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        with self.client() as http:
            while not self.stop.wait(PROBE_PAUSE_S):
                try:
                    probe(http, db, rng)
                except Exception as exc:  # noqa: BLE001
                    self.error("probe", f"{type(exc).__name__}: {exc}")
        db.close()

    def probe_dislike(self, http, db, rng: random.Random) -> None:
        user = rng.choice(self.users)
        items = self.recommend(http, user, record=False)
        if not items:
            return
        top = items[0]
        t = time.perf_counter()
        if not self.post(http, [self.event(rng, user, "probe", type="dislike", item_id=top)]):
            return
        while not self.stop.is_set():
            items = self.recommend(http, user, record=False)
            if items is None:
                return
            if top not in items:
                with self.lock:
                    self.dislike_ms.append((time.perf_counter() - t) * 1000)
                return

    @staticmethod
    def _head(db, user: str) -> tuple[int, int]:
        row = db.execute("SELECT version, last_event_seq FROM profile_heads WHERE user_id = ?", (user,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def probe_background(self, http, db, rng: random.Random) -> None:
        user = rng.choice(self.users)
        version, _ = self._head(db, user)
        event = self.event(rng, user, "probe", type="rating", value=5.0)
        t = time.perf_counter()
        if not self.post(http, [event]):
            return
        seq = db.execute("SELECT seq FROM events WHERE event_id = ?", (event["event_id"],)).fetchone()[0]
        deadline = t + 30
        while time.perf_counter() < deadline and not self.stop.is_set():
            new_version, covered = self._head(db, user)
            if covered >= seq:
                with self.lock:
                    self.background_ms.append((time.perf_counter() - t) * 1000)
                    self.background_at.append(t)
                    self.versions_changed += new_version != version
                return
            time.sleep(0.005)
        if not self.stop.is_set():
            self.error("background", f"user {user}: the profile did not cover event seq {seq} within 30 s")

    def probe_read_your_writes(self, http, db, rng: random.Random) -> None:
        user = rng.choice(self.users)
        event = self.event(rng, user, "probe", type="rating", value=4.5)
        t = time.perf_counter()
        if not self.post(http, [event]):
            return
        seq = db.execute("SELECT seq FROM events WHERE event_id = ?", (event["event_id"],)).fetchone()[0]
        r = http.get(f"/v1/users/{user}/profile")
        ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            self.error("profile", f"HTTP {r.status_code}: {r.text}")
        elif self._head(db, user)[1] < seq:  # the head, not the body: an unchanged profile keeps its old version
            self.error("stale_read", f"user {user}: the profile served did not cover event seq {seq}")
        else:
            with self.lock:
                self.ryw_ms.append(ms)


def movie_ids(data: str) -> list[str]:
    with open(Path(data) / "movies.csv", newline="") as fh:
        return [row["movieId"] for row in csv.DictReader(fh)]


def run(args, home: Path, say) -> dict:
    result: dict = {"data": args.data, "home": str(home) if args.home else "temporary", "seconds": args.seconds,
                    "clients": args.clients, "batch": args.batch, "rate": args.rate or "unpaced",
                    "narratives": args.narratives, "warmup_s": args.warmup, "workers": args.workers, "settings": args.set,
                    "reads_per_post": args.reads}
    setup_info = setup(args, home, say)
    key = setup_info.pop("key")
    result["setup_s"] = setup_info
    users = [str(u) for u in range(1, 611)] + [f"bench-{i}" for i in range(1, args.new_users + 1)]
    items = movie_ids(args.data)
    result["users"] = len(users)

    server = Server(home, args.narratives, args.workers, dict(kv.split("=", 1) for kv in args.set))
    exit_code = None
    try:
        result["server_ready_s"] = round(server.wait_ready(), 1)
        say(f"server ready on {server.base_url} in {result['server_ready_s']} s")
        result["server_warm_s"] = round(server.wait_warm(key), 1)
        say(f"interest states of the most recent users warmed in {result['server_warm_s']} s more")
        interval = args.batch * args.clients / args.rate if args.rate > 0 else 0.0
        load = Load(server.base_url, key, users, items, args.batch, interval, args.reads)
        threads = [threading.Thread(target=load.run_client, args=(i,), name=f"client-{i}") for i in range(args.clients)]
        threads += [threading.Thread(target=load.run_probe, args=(probe, home / "tastebud.db", 1000 + i), name=probe.__name__)
                    for i, probe in enumerate(load.probes())]
        for t in threads:
            t.start()
        if args.warmup > 0:  # the same load, unrecorded: a server's steady state, not its first touches
            load.stop.wait(args.warmup)
            load.reset()
        started = time.perf_counter()
        samples: list[dict] = []
        if args.status_every > 0:
            sampler = threading.Thread(target=sample_status, args=(server.base_url, key, args.status_every, load.stop,
                                                                   started, samples), name="status-sampler")
            threads.append(sampler)
            sampler.start()
        load.stop.wait(args.seconds)
        load.stop.set()
        for t in threads:
            t.join()
        result["status_samples"] = samples
        elapsed = time.perf_counter() - started
        import httpx

        status = httpx.get(f"{server.base_url}/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        result["server_live_stats"] = status.json().get("live") if status.status_code == 200 else status.text
    finally:
        t = time.perf_counter()
        exit_code = server.stop()
        result["server_shutdown_s"] = round(time.perf_counter() - t, 1)
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete: -15 after that line is clean
    clean = exit_code == 0 or (exit_code == -signal.SIGTERM and "Application shutdown complete" in server.log_path.read_text())
    if not clean:
        load.error("shutdown", f"the server exited with {exit_code}; see {server.log_path}")

    result["events_accepted"] = load.accepted
    result["events_per_s"] = round(load.accepted / elapsed, 1)
    result["latency_ms"] = {"post_events": summary(load.post_ms), "recommendations": summary(load.rec_ms)}
    result["freshness_ms"] = {
        "event_to_updated_recommendation": summary(load.dislike_ms),
        "event_to_new_profile_version_background": {**summary(load.background_ms), "version_changed": load.versions_changed},
        "background_by_minute": by_minute(load.background_at, load.background_ms, started),
        "event_to_profile_read_your_writes": summary(load.ryw_ms),
    }
    result["errors"] = {"total": sum(load.errors.values()), **load.errors, "samples": load.error_samples}

    # ---- raw baselines in this process --------------------------------------------------
    result["baseline"] = baselines(home, users, items, args.batch, len(load.rec_ms))
    direct = result["baseline"]["direct_recommend_ms"]
    recs = result["latency_ms"]["recommendations"]
    result["ratios"] = {
        **({"api_rec_p50_over_direct_p50": round(recs["p50"] / direct["p50"], 1),
            "api_rec_p95_over_direct_p95": round(recs["p95"] / direct["p95"], 1)} if recs["n"] else {}),
        "api_events_per_s_over_raw_sqlite": round(result["events_per_s"] / result["baseline"]["raw_sqlite_events_per_s"], 4),
    }
    report(result, say)
    return result


def by_minute(at: list[float], ms: list[float], started: float) -> list[dict]:
    """The background probes of each minute of the recorded window: does the lag drift?"""
    minutes: dict[int, list[float]] = {}
    for t, value in zip(at, ms):
        if t < started:
            continue  # posted in the warm-up, answered after it
        minutes.setdefault(int((t - started) // 60), []).append(value)
    return [{"minute": m, **summary(v)} for m, v in sorted(minutes.items())]


def sample_status(base_url: str, key: str, every: float, stop: threading.Event, started: float, out: list) -> None:
    """Every `every` s: the answering worker's pid, memory and frozen heap (GET /v1/status)."""
    import httpx

    while not stop.wait(every):
        try:
            r = httpx.get(f"{base_url}/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            process = r.json()["process"]
        except Exception as exc:  # noqa: BLE001 - a missed sample is a gap in the record, not a failure
            out.append({"t_s": round(time.perf_counter() - started, 1), "error": str(exc)})
            continue
        out.append({"t_s": round(time.perf_counter() - started, 1), "pid": process["pid"],
                    "rss_mb": round(process["rss_bytes"] / 1e6, 1) if process["rss_bytes"] else None,
                    "frozen": process["gc"]["frozen"], "collections": process["gc"]["collections_by_generation"]})


def baselines(home: Path, users: list[str], items: list[str], batch: int, n_recs: int) -> dict:
    from tastebud.profiles.store import SQLITE_PRAGMAS, EventStore
    from tastebud.retrieval.service import RecommendationService
    from tastebud.settings import load_settings
    from tastebud.app import App

    out: dict = {}
    app = App(load_settings(home=home))
    try:
        service = RecommendationService(app.store, app.vectors, app.settings.blend, app.embedder)
        rng = random.Random(7)
        chosen = [rng.choice(users) for _ in range(min(max(n_recs, 200), 1000))]
        service.recommend(chosen[0], 10, source="bench")  # warm-up: item side, first round trips
        times = []
        for user in chosen:
            t = time.perf_counter()
            service.recommend(user, 10, source="bench")
            times.append((time.perf_counter() - t) * 1000)
        out["direct_recommend_ms"] = summary(times)
    finally:
        app.close()

    with tempfile.TemporaryDirectory(prefix="tastebud-bench-sqlite-") as scratch:
        path = Path(scratch) / "raw.db"
        EventStore(f"sqlite:///{path}").close()  # the store's schema
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        rng = random.Random(11)
        insert = ("INSERT INTO events (event_id, user_id, item_id, type, ts, value, text) VALUES (?, ?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT DO NOTHING")
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < 5.0:
            rows = [(f"raw-{n + i}", rng.choice(users), rng.choice(items), "rating", int(time.time() * 1000), 4.0, None)
                    for i in range(batch)]
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            n += batch
        out["raw_sqlite_events_per_s"] = round(n / (time.perf_counter() - t), 1)
        out["raw_sqlite_batch"] = batch
        conn.close()
    return out


def report(result: dict, say) -> None:
    lat, fresh, base = result["latency_ms"], result["freshness_ms"], result["baseline"]
    say(f"\n{result['clients']} clients for {result['seconds']:.0f} s, {result['batch']} events per POST, "
        f"rate {result['rate']}, {result['reads_per_post']:g} recommendation reads per POST, narratives {'on' if result['narratives'] else 'off'}, "
        f"{result['workers']} worker(s), recorded after {result['warmup_s']:.0f} s of warm-up")
    say(f"server ready in {result['server_ready_s']} s, graceful shutdown in {result['server_shutdown_s']} s")
    say(f"events accepted: {result['events_accepted']:,} ({result['events_per_s']} events/s)")
    for name, s in (("POST /v1/events", lat["post_events"]), ("GET recommendations", lat["recommendations"]),
                    ("event -> updated recommendation (dislike)", fresh["event_to_updated_recommendation"]),
                    ("event -> new profile version (background)", fresh["event_to_new_profile_version_background"]),
                    ("event -> profile read (read-your-writes)", fresh["event_to_profile_read_your_writes"])):
        say(f"  {name:<44} n={s['n']:<6} p50 {s['p50']} ms, p95 {s['p95']} ms, p99 {s['p99']} ms, max {s['max']} ms")
    for m in fresh.get("background_by_minute", []):
        say(f"  background, minute {m['minute']}: n={m['n']} p50 {m['p50']} ms, p95 {m['p95']} ms, max {m['max']} ms")
    say(f"errors: {result['errors']['total']}" + (f" {result['errors']}" if result["errors"]["total"] else ""))
    say(f"baseline: direct RecommendationService.recommend p50 {base['direct_recommend_ms']['p50']} ms, "
        f"p95 {base['direct_recommend_ms']['p95']} ms; raw sqlite3 inserts ({base['raw_sqlite_batch']} per commit) "
        f"{base['raw_sqlite_events_per_s']:,} events/s")
    say(f"ratios: {result['ratios']}")
    live = result.get("server_live_stats") or {}
    if isinstance(live, dict) and "live" in live:
        say(f"server side: event accepted -> profile and vectors saved by the live thread {live['live'].get('lag_ms')}")
    by_pid: dict = {}
    for sample in result.get("status_samples") or []:
        if "pid" in sample:
            by_pid.setdefault(sample["pid"], []).append(sample)
    for pid, samples in by_pid.items():
        first, last = samples[0], samples[-1]
        say(f"worker {pid}: rss {first['rss_mb']} -> {last['rss_mb']} MB, frozen objects {first['frozen']:,} -> "
            f"{last['frozen']:,}, full collections {first['collections'][2]} -> {last['collections'][2]} "
            f"({first['t_s']} -> {last['t_s']} s, {len(samples)} samples)")
    say(f"server live stats at the end: {json.dumps(live)}")


if __name__ == "__main__":
    sys.exit(main())
