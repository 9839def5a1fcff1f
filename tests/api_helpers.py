"""A real `tastebud serve` process for API tests: a small home seeded through the
CLI (ingest, refresh, index), copied per server, keys made with `tastebud keys
create`, the server started on a free loopback port and awaited on /readyz."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx

TASTEBUD = Path(sys.executable).parent / "tastebud"
T0 = 1_700_000_000  # epoch seconds

CATALOG = """item_id,title,categories
m1,Heat,Crime|Thriller
m2,Ronin,Action|Crime|Thriller
m3,The Usual Suspects,Crime|Mystery
m4,Paddington,Comedy|Children
m5,Toy Story,Animation|Comedy
m6,Alien,Horror|Sci-Fi
m7,Se7en,Crime|Mystery|Thriller
m8,Fargo,Comedy|Crime|Drama
m9,Amelie,Comedy|Romance
m10,The Notebook,Drama|Romance
m11,Casino,Crime|Drama
m12,Jaws,Horror|Thriller
m13,Inception,Action|Sci-Fi
m14,Up,Animation|Adventure|Comedy
"""

# Crime fans (u1, u2 and a background) and comedy fans, so co-occurrence has something to say.
HISTORIES = {
    "u1": ["m1", "m2", "m3"],
    "u2": ["m1", "m7", "m11"],
    **{f"b{n}": ["m1", "m2", "m3", "m7", "m11", "m13", "m6" if n % 2 else "m4"] for n in range(6)},
    **{f"c{n}": ["m4", "m5", "m9", "m14", "m8"] for n in range(3)},
}


def events_csv() -> str:
    lines = ["user_id,item_id,type,timestamp,value"]
    for user, items in HISTORIES.items():
        for n, item in enumerate(items):
            lines.append(f"{user},{item},rating,{T0 + n * 3600},{4.0 + (n % 3) * 0.5}")
    return "\n".join(lines) + "\n"


def env_for(home: Path, **settings: Any) -> dict[str, str]:
    """A clean environment: only this test's TASTEBUD_* settings, no network for models."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(TASTEBUD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               COLUMNS="200")
    env.update({f"TASTEBUD_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def cli(home: Path, *args: str, check: bool = True, **settings: Any) -> subprocess.CompletedProcess:
    done = subprocess.run([str(TASTEBUD), *args], env=env_for(home, **settings), capture_output=True, text=True,
                          timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"tastebud {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def seed_home(home: Path) -> Path:
    """The small world through the real commands."""
    home.mkdir(parents=True, exist_ok=True)
    data = home.parent / f"{home.name}-data"
    data.mkdir(exist_ok=True)
    (data / "catalog.csv").write_text(CATALOG)
    (data / "events.csv").write_text(events_csv())
    cli(home, "ingest", "catalog", str(data / "catalog.csv"))
    cli(home, "ingest", "events", str(data / "events.csv"))
    cli(home, "refresh", "--all", "--no-narratives")
    cli(home, "index")
    return home


def copy_home(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def create_key(home: Path, role: str, user: str | None = None, **settings: Any) -> str:
    args = ["keys", "create", "--role", role] + (["--user", user] if user else [])
    return cli(home, *args, **settings).stdout.strip().splitlines()[-1]


def key_id(key: str) -> str:
    return key.split("_", 2)[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.1) -> Any:
    """Poll until `check()` is truthy (a safety net, not a performance claim)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every)


class Server:
    """`tastebud serve` as a child process (one worker: the child is the server)."""

    def __init__(self, home: Path, **settings: Any):
        defaults = {"serve_narratives": 0, "api_chat_phrasing": 0}
        self.home = home
        self.settings = {**defaults, **settings}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"{home.name}-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        return self.launch().wait_ready()

    def launch(self) -> "Server":
        """Start the process without waiting (several servers start side by side)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([str(TASTEBUD), "serve", "--port", str(self.port)],
                                     env=env_for(self.home, **self.settings), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def wait_ready(self) -> "Server":
        wait_for("the server to be ready", self._ready, timeout=180)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (uvicorn's graceful shutdown); returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode

    # the store, read directly (WAL: readers never block the server)
    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.home / 'tastebud.db'}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def stored_event_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            found.update(r[0] for r in self.query(
                f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})", chunk))
        return found
