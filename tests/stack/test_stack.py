"""The distributed stack as one (issue 13): a PostgreSQL 15 cluster and a
`chroma run` server, each in a temp dir; a slice of ml-latest-small ingested,
indexed and refreshed by two concurrent `tastebud refresh --all --shard i/2`
processes; two `tastebud serve` workers (separate homes, as on two machines)
on that database and Chroma behind the same keys. Events go to one worker,
reads to the other; one worker is killed with SIGKILL in the middle of a load
and nothing it acknowledged may be lost.

Skipped (with the reason) only where tests/services.py skips: no PostgreSQL
server binaries, psycopg or chroma CLI. A PostgreSQL that is installed but
does not start fails.
"""

from __future__ import annotations

import csv
from collections import Counter
import itertools
import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api_helpers import TASTEBUD, Server, cli, create_key, env_for, wait_for
from tests.services import chroma_server, postgres_server

pytestmark = pytest.mark.stack

USERS = 14  # the first USERS users of ml-latest-small with at most 60 ratings: 530 ratings, 380 movies
MAX_RATINGS = 60  # small histories keep the catalog, and so indexing and start-up, small
# Both workers: narratives on (their requests are queued in PostgreSQL) but due only in
# an hour and never reachable (no LLM here); no chat phrasing; no rate limit in the way.
WORKER = {"serve_narratives": 1, "narrative_debounce_s": 3600, "llm_base_url": "http://127.0.0.1:9/v1",
          "api_chat_phrasing": 0, "api_rate_limit_per_s": 10000, "api_rate_burst": 10000}
NOW = int(time.time()) - 86_400  # posted events: newer than the data set, never in the future


def ml_slice(source: Path, dest: Path, users: int, max_ratings: int) -> Path:
    """ratings, tags and movies of the first `users` users with at most
    `max_ratings` ratings, in the ml-latest-small layout."""
    dest.mkdir(parents=True)

    def rows(name: str) -> tuple[list[str], list[dict[str, str]]]:
        with (source / name).open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    def write(name: str, header: list[str], kept: list[dict[str, str]]) -> None:
        with (dest / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, header)
            writer.writeheader()
            writer.writerows(kept)

    header, ratings = rows("ratings.csv")
    counts = Counter(r["userId"] for r in ratings)
    chosen = set(sorted((u for u, n in counts.items() if n <= max_ratings), key=int)[:users])
    ratings = [r for r in ratings if r["userId"] in chosen]
    movies_seen = {r["movieId"] for r in ratings}
    write("ratings.csv", header, ratings)
    header, tags = rows("tags.csv")
    write("tags.csv", header, [t for t in tags if t["userId"] in chosen and t["movieId"] in movies_seen])
    header, movies = rows("movies.csv")
    write("movies.csv", header, [m for m in movies if m["movieId"] in movies_seen])
    return dest


class Stack:
    def __init__(self, root: Path, db_url: str, chroma_url: str):
        self.root = root
        self.db_url = db_url
        self.chroma_url = chroma_url
        self.engines = {"database_url": db_url, "chroma_url": chroma_url}
        self.db = create_engine(db_url, pool_pre_ping=True)
        self.workers: dict[str, Server] = {}
        self.key = ""
        self.users: list[str] = []
        self.after_shards: dict[str, Any] = {}

    def home(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def cli(self, *args: str, home: str = "ops") -> subprocess.CompletedProcess:
        return cli(self.home(home), *args, **self.engines)

    def popen(self, *args: str, home: str = "ops") -> subprocess.Popen:
        return subprocess.Popen([str(TASTEBUD), *args], env=env_for(self.home(home), **self.engines),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def worker(self, name: str) -> Server:
        return Server(self.home(f"worker-{name}"), **self.engines, **WORKER)

    def sql(self, query: str, **params: Any) -> list[tuple]:
        with self.db.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]

    def heads(self) -> dict[str, int]:
        return dict(self.sql("SELECT user_id, version FROM profile_heads"))

    def chroma_profile_ids(self, users: list[str]) -> set[str]:
        url = httpx.URL(self.chroma_url)
        import chromadb

        client = chromadb.HttpClient(host=url.host, port=url.port,
                                     settings=chromadb.config.Settings(anonymized_telemetry=False))
        wanted = [f"{u}:{h}" for u in users for h in ("long", "short")]
        return set(client.get_collection("profiles").get(ids=wanted, include=[])["ids"])


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    with postgres_server(prefix="tastebud-stack-pg-") as db_url, chroma_server(root / "chroma") as chroma_url:
        s = Stack(root, db_url, chroma_url)
        data = ml_slice(Path(__file__).resolve().parents[2] / "examples" / "ml-latest-small", root / "ml-slice", USERS,
                        MAX_RATINGS)
        s.cli("ingest", "movielens", str(data))
        s.users = sorted(u for (u,) in s.sql("SELECT DISTINCT user_id FROM events"))
        assert len(s.users) == USERS

        # the two halves of a full refresh side by side, and item indexing beside them,
        # all three on a Chroma server that has no collections yet
        index = s.popen("index", "--json")
        shards = [s.popen("refresh", "--all", "--no-narratives", "--shard", f"{i}/2", "--json") for i in range(2)]
        outs = [p.communicate(timeout=300) for p in shards]
        for p, (out, err) in [*zip(shards, outs), (index, index.communicate(timeout=300))]:
            assert p.returncode == 0, f"{p.args[1:]} exited {p.returncode}:\n{out}\n{err}"
        s.after_shards = {
            "reports": [json.loads(out) for out, _ in outs],
            "heads": s.heads(),
            "versions": s.sql("SELECT user_id, version FROM profile_versions ORDER BY user_id, version"),
            "lagging": s.sql("SELECT count(*) FROM profile_heads h JOIN (SELECT user_id, max(seq) AS seq FROM events "
                             "GROUP BY user_id) e ON e.user_id = h.user_id WHERE e.seq > h.last_event_seq")[0][0],
            "chroma_ids": s.chroma_profile_ids(s.users),
        }

        s.key = create_key(s.home("ops"), "operator", **s.engines)  # in the database: every worker knows it
        s.workers = {"a": s.worker("a").launch(), "b": s.worker("b").launch()}
        try:
            for w in s.workers.values():
                w.wait_ready()
            yield s
        finally:
            for name, w in s.workers.items():
                if w.proc is not None and w.proc.poll() is None:
                    code = w.stop()
                    assert code in (0, -signal.SIGTERM), w.log()
                    assert "Application shutdown complete" in w.log(), w.log()
            s.db.dispose()


def test_sharded_refreshes_side_by_side_give_every_user_one_version(stack):
    done = stack.after_shards
    assert sorted(r["users"] for r in done["reports"]) and sum(r["users"] for r in done["reports"]) == USERS
    assert all(r["users"] > 0 for r in done["reports"]), done["reports"]  # both shards had work
    assert sum(r["new_versions"] for r in done["reports"]) == USERS
    assert done["heads"] == dict.fromkeys(stack.users, 1)  # none missing, none done twice
    assert done["versions"] == [(u, 1) for u in stack.users]
    assert done["lagging"] == 0
    assert done["chroma_ids"] == {f"{u}:{h}" for u in stack.users for h in ("long", "short")}


def test_events_posted_to_one_worker_are_read_fresh_from_the_other(stack):
    a, b = stack.workers["a"], stack.workers["b"]
    users = stack.users[:8]
    with a.client(stack.key) as ca, b.client(stack.key) as cb:
        before = {}
        for user in users:
            recs = cb.get(f"/v1/users/{user}/recommendations", params={"k": 5})
            assert recs.status_code == 200, recs.text
            profile = cb.get(f"/v1/users/{user}/profile").json()
            before[user] = (recs.json()["items"][0]["item_id"], profile["version"], profile["last_event_seq"])
        # one batch to worker A: each user dislikes the top item worker B just served them
        events = [{"event_id": f"stack-dislike-{user}", "user_id": user, "item_id": top, "type": "dislike",
                   "timestamp": NOW} for user, (top, _, _) in before.items()]
        posted = ca.post("/v1/events", json={"events": events})
        assert posted.status_code == 200, posted.text
        assert [r["status"] for r in posted.json()["results"]] == ["accepted"] * len(users)
        # ...read at once from worker B
        for user in users:
            top, version, last_seq = before[user]
            profile = cb.get(f"/v1/users/{user}/profile")
            assert profile.status_code == 200, profile.text
            profile = profile.json()
            stored_seq = stack.sql("SELECT seq FROM events WHERE event_id = :e", e=f"stack-dislike-{user}")[0][0]
            assert profile["last_event_seq"] >= stored_seq > last_seq, (user, profile["last_event_seq"], stored_seq)
            assert profile["version"] > version
            assert {"item_id": top, "event_id": f"stack-dislike-{user}"}.items() <= next(
                (i for i in profile["dislikes"]["items"] if i["item_id"] == top), {}).items(), profile["dislikes"]
            recs = cb.get(f"/v1/users/{user}/recommendations", params={"k": 50}).json()
            assert top not in [i["item_id"] for i in recs["items"]]
            history = cb.get(f"/v1/users/{user}/profile/history").json()["versions"]
            assert f"stack-dislike-{user}" in history[-1]["trigger_event_ids"] or any(
                f"stack-dislike-{user}" in v["trigger_event_ids"] for v in history if v["version"] > version)


def test_nothing_acknowledged_is_lost_when_a_worker_is_killed_mid_load(stack):
    a, b = stack.workers["a"], stack.workers["b"]
    users = stack.users
    acked: list[str] = []
    unacked: list[list[dict]] = []  # batches sent without a 2xx answer: a client would retry them
    lock = threading.Lock()
    stop = threading.Event()
    counter = itertools.count()

    def post_load(n_thread: int) -> None:
        with a.client(stack.key) as c:
            while not stop.is_set():
                n = next(counter)
                batch = [{"event_id": f"stack-load-{n}-{i}", "user_id": users[(n + i) % len(users)],
                          "item_id": f"{1 + (n * 7 + i) % 50}", "type": "click" if i % 2 else "view",
                          "timestamp": NOW + n * 20 + i} for i in range(20)]
                try:
                    r = c.post("/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    with lock:
                        unacked.append(batch)
                    return
                if r.status_code // 100 != 2:
                    with lock:
                        unacked.append(batch)
                    continue
                results = r.json()["results"]
                assert [x["status"] for x in results] == ["accepted"] * len(batch), results
                with lock:
                    acked.extend(x["event_id"] for x in results)

    def read_load() -> None:  # worker B refreshes the same users on reads meanwhile
        with b.client(stack.key) as c:
            for n in itertools.count():
                if stop.is_set():
                    return
                r = c.get(f"/v1/users/{users[n % len(users)]}/profile")
                assert r.status_code == 200, r.text

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(post_load, 0), pool.submit(post_load, 1), pool.submit(read_load)]
        wait_for("acknowledged batches", lambda: len(acked) >= 300 or any(f.done() for f in futures), timeout=120)
        a.proc.send_signal(signal.SIGKILL)  # in the middle of the load: no shutdown code runs
        a.proc.wait(30)
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result(timeout=60)
    assert len(acked) >= 300 and len(acked) == len(set(acked))

    stored = {e for (e,) in stack.sql("SELECT event_id FROM events WHERE event_id LIKE 'stack-load-%'")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"

    # the client retries what got no answer, on the surviving worker: each event lands once
    sent = set(acked)
    with b.client(stack.key) as cb:
        for batch in unacked:
            r = cb.post("/v1/events", json={"events": batch})
            assert r.status_code == 200, r.text
            statuses = {x["event_id"]: x["status"] for x in r.json()["results"]}
            assert set(statuses.values()) <= {"accepted", "duplicate"}
            assert all(statuses[e] == "duplicate" for e in statuses if e in stored)
            sent.update(statuses)
    rows = stack.sql("SELECT event_id, count(*) FROM events WHERE event_id LIKE 'stack-load-%' GROUP BY event_id")
    assert {e for e, _ in rows} == sent and all(n == 1 for _, n in rows)

    # worker B reads every user up to their last event (whichever worker took it)...
    with b.client(stack.key) as cb:
        for user in users:
            profile = cb.get(f"/v1/users/{user}/profile").json()
            last_seq, count = stack.sql("SELECT max(seq), count(*) FROM events WHERE user_id = :u", u=user)[0]
            assert profile["last_event_seq"] == last_seq, user
            assert profile["stats"]["events"] == count, user
        # ...and what it served was complete: recomputing from the store changes nothing
        refreshed = cb.post("/v1/admin/refresh", json={"users": users}).json()
        assert (refreshed["users"], refreshed["new_versions"]) == (len(users), 0), refreshed

    # worker A comes back on the same database: clean start, work left by the kill taken up
    log_before = len(a.log())
    a.launch().wait_ready()
    with a.client(stack.key) as ca:
        status = ca.get("/v1/status").json()
        assert status["live"]["running"] and status["vectors"]["profiles"] == 2 * len(users), status
        queued = {u for (u,) in stack.sql("SELECT user_id FROM narrative_queue")}
        assert set(users) <= queued  # the narrative work of every user with new events survived
        for user in users[:3]:
            assert ca.get(f"/v1/users/{user}/recommendations", params={"k": 5}).status_code == 200
        assert ca.get("/v1/status").json()["live"]["errors"] == 0
    restarted = a.log()[log_before:]
    assert "Application startup complete" in restarted and "Traceback" not in restarted, restarted
    assert "Traceback" not in b.log(), b.log()[-5000:]
