"""Real engines for tests, each in a temp dir and torn down afterwards: a
PostgreSQL cluster (initdb + pg_ctl, unix socket only) and a `chroma run`
server on a free loopback port. Shared by tests/integration/test_store_postgres.py,
tests/integration/test_chroma_server.py and the `stack` tier (tests/stack/).

Policy, the same everywhere: a machine without the PostgreSQL server binaries,
psycopg or the chroma CLI skips these tests with the reason (shown by `-ra`).
An installed PostgreSQL that does not start skips the store tests (the machine
cannot run a server: not what they test) and fails the stack tier; a chroma
server that does not answer fails them all.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:] or [None]
    return found if isinstance(found, str) else found[0]


@contextmanager
def postgres_server(prefix: str = "tastebud-pg-", max_connections: int = 100,
                    skip_if_it_fails: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields its SQLAlchemy URL (psycopg, unix socket).
    skip_if_it_fails: a cluster that does not start skips (for tests of something
    else) instead of failing (for tests of the stack)."""
    pytest.importorskip("psycopg")
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root without a postgres user")
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    steps = [
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        [*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"),
         "-o", f"-k {sock} -c listen_addresses='' -c fsync=off -c max_connections={max_connections}", "start"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            log = (root / "log").read_text()[-500:] if (root / "log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            (pytest.skip if skip_if_it_fails else pytest.fail)(f"cannot start PostgreSQL ({' '.join(step[-3:])}): {done.stderr.strip()[-300:]} {log}")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def chroma_cli() -> str:
    local = Path(sys.executable).with_name("chroma")
    found = str(local) if local.exists() else shutil.which("chroma")
    if not found:
        pytest.skip("no chroma CLI (it comes with the chromadb package)")
    return found


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """`chroma run --path PATH/data --port FREE` on loopback; yields its URL once
    its heartbeat answers."""
    path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (path / "server.log").open("wb")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [chroma_cli(), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}: {(path / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma server did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
