"""Everything under TASTEBUD_HOME is private: files 0600, folders 0700 (tastebud/home.py).

The process umask is set to 022 before each command here, as an operator's shell
has it, so these tests see what the entry points themselves make private."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

T = 1_700_000_000
CATALOG = "item_id,title,categories\nm1,Heat,Crime|Thriller\nm2,Ronin,Action|Crime\nm3,Paddington,Comedy|Children\n"
EVENTS = (f"user_id,item_id,type,timestamp,value\nu1,m1,rating,{T},4.5\nu1,m2,rating,{T + 60},4\n"
          f"u2,m3,rating,{T},5\nu2,m1,view,{T + 60},\n")
TIGHTENED = re.compile(r"^tightened permissions of (\d+) paths? under (.+) to owner-only$")


@pytest.fixture(autouse=True)
def operator_umask():
    """Start from the usual 022 and give the test session its umask back afterwards."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(home: Path) -> dict[str, str]:
    """Every path under home (home included), relative name -> octal mode; symlinks not followed."""
    out = {".": oct(stat.S_IMODE(home.stat().st_mode))}
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(root, name)
            out[str(path.relative_to(home))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def loose(home: Path) -> dict[str, str]:
    """Paths that are not exactly 0700 (folders) or 0600 (files)."""
    bad = {}
    for name, mode in modes(home).items():
        path = home / name
        if path.is_symlink():
            continue
        want = "0o700" if path.is_dir() else "0o600"
        if mode != want:
            bad[name] = mode
    return bad


@pytest.fixture
def cli(home, monkeypatch, embedder):
    """The Typer app in-process, with the session's embedding model (Chroma files are real)."""
    from tastebud.cli.main import State, _register, app

    monkeypatch.setattr(State, "parts", {"embedder": embedder})  # injected into the App, not patched
    _register()
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        if State._app is not None:
            State._app.close()
            State._app = None
        return result

    yield invoke
    if State._app is not None:
        State._app.close()
        State._app = None


def test_a_fresh_home_is_private_after_real_commands(cli, home, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from tastebud.api.access import ACCESS_LOGGER
    from tastebud.api.app import create_app
    from tastebud.settings import load_settings, write_setting

    fresh = tmp_path / "fresh-home"  # does not exist yet: tastebud creates it
    monkeypatch.setenv("TASTEBUD_HOME", str(fresh))
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog.csv").write_text(CATALOG)
    (data / "events.csv").write_text(EVENTS)

    commands = [
        ("ingest", "catalog", str(data / "catalog.csv")),  # SQLite and its -wal/-shm
        ("ingest", "events", str(data / "events.csv")),
        ("refresh", "--all", "--no-narratives"),  # profile vectors into Chroma
        ("index",),  # item vectors into Chroma
        ("recommend", "u1", "-k", "2"),  # the item side cache
        ("status",),
    ]
    for args in commands:  # checked after each one: the next open would tighten what it left
        os.umask(0o022)
        cli(*args)
        assert loose(fresh) == {}, (args, modes(fresh))

    os.umask(0o022)
    write_setting(load_settings(), "max_tags", 12)  # tastebud.toml, as `eval --fit` writes it
    assert loose(fresh) == {}, modes(fresh)

    os.umask(0o022)
    api = create_app(load_settings())  # a `serve` worker: opens logs/access.jsonl
    try:
        assert TestClient(api).get("/healthz").status_code == 200
    finally:
        for handler in list(logging.getLogger(ACCESS_LOGGER).handlers):
            logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
            handler.close()

    names = modes(fresh)
    for expected in ("tastebud.db", "tastebud.toml", "chroma", "chroma/chroma.sqlite3", "logs/access.jsonl"):
        assert expected in names, sorted(names)
    assert any(n.startswith("chroma/") and n.count("/") >= 2 for n in names), sorted(names)  # a segment folder
    assert len(names) > 8
    assert loose(fresh) == {}, modes(fresh)


def make_loose_home(home: Path) -> int:
    """A home as an older tastebud (umask 022) left it: 0755 folders, 0644 files. Returns the path count."""
    home.mkdir(parents=True, exist_ok=True)
    for folder in ("logs", "chroma/0b1c", "sessions"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    sqlite3.connect(home / "tastebud.db").close()  # an empty database: migrated on open
    (home / "tastebud.toml").write_text("max_tags = 12\n")
    (home / "logs" / "access.jsonl").write_text('{"path": "/healthz"}\n')
    (home / "chroma" / "chroma.sqlite3").write_bytes(b"")
    (home / "chroma" / "0b1c" / "header.bin").write_bytes(b"\0")
    (home / "sessions" / "s1.json").write_text("{}")
    count = 0
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        count += 1
    return count


def run_tastebud(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, as an operator runs it (umask 022 inherited)."""
    script = Path(sys.executable).with_name("tastebud")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from tastebud.cli.main import run; run()"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env["TASTEBUD_HOME"] = str(home)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)


def test_an_existing_loose_home_is_tightened_with_one_line(tmp_path):
    home = tmp_path / "old-home"
    count = make_loose_home(home)
    assert set(modes(home).values()) == {"0o755", "0o644"}
    events = tmp_path / "events.csv"
    events.write_text(EVENTS)

    done = run_tastebud(home, "ingest", "events", str(events))
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "permissions" in line]
    assert len(said) == 1, done.stderr
    match = TIGHTENED.match(said[0])
    assert match and int(match.group(1)) == count and match.group(2) == str(home), said
    assert loose(home) == {}, modes(home)
    assert (home / "tastebud.db-wal").exists() or (home / "tastebud.db").stat().st_size > 0

    again = run_tastebud(home, "status")  # nothing left to tighten: nothing said
    assert again.returncode == 0, again.stderr
    assert "permissions" not in again.stderr
    assert loose(home) == {}, modes(home)


def test_an_existing_loose_home_is_tightened_in_process_too(home, caplog):
    """The library path (App, as tests and notebooks use it) logs the same one WARNING."""
    from tastebud.settings import load_settings
    from tastebud.app import App

    count = make_loose_home(home)
    with caplog.at_level(logging.WARNING, logger="tastebud.home"):
        app = App(load_settings())
        try:
            app.store.status()
        finally:
            app.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "tastebud.home"]
    assert len(lines) == 1 and TIGHTENED.match(lines[0]).group(1) == str(count), lines
    assert loose(home) == {}, modes(home)


def test_secure_home_counts_skips_symlinks_and_keeps_owner_bits(tmp_path):
    from tastebud.home import secure_home

    shared = tmp_path / "shared-models"  # e.g. a models folder linked in from elsewhere: not ours
    shared.mkdir(mode=0o755)
    (shared / "model.gguf").write_bytes(b"x")
    (shared / "model.gguf").chmod(0o644)
    home = tmp_path / "a" / "home"
    assert secure_home(home) == 0 and oct(home.stat().st_mode & 0o777) == "0o700"

    (home / "models").symlink_to(shared, target_is_directory=True)
    (home / "run.sh").write_text("#!/bin/sh\n")
    (home / "run.sh").chmod(0o755)
    (home / "secret").write_text("")
    (home / "secret").chmod(0o400)  # stricter than 0600: left alone
    assert secure_home(home) == 1
    assert oct((home / "run.sh").stat().st_mode & 0o777) == "0o700"  # owner keeps its bits
    assert oct((home / "secret").stat().st_mode & 0o777) == "0o400"
    assert oct(shared.stat().st_mode & 0o777) == "0o755"
    assert oct((shared / "model.gguf").stat().st_mode & 0o777) == "0o644"
    assert secure_home(home) == 0
