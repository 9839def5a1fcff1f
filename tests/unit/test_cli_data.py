"""The operator commands: ingest (files, stdin, MovieLens), quarantine, status, and how errors look."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastebud.errors import NotFoundError

T = 964982703
STATUS_KEYS = {"users", "items", "events", "events_by_type", "first_event_at", "last_event_at", "quarantined",
               "profiles_stale"}


def tastebud(home: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as an operator runs it."""
    script = Path(sys.executable).with_name("tastebud")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from tastebud.cli.main import run; run()"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env["TASTEBUD_HOME"] = str(home)
    return subprocess.run([*cmd, *args], input=input, capture_output=True, env=env, timeout=120)


@pytest.fixture
def cli(home):
    """Invoke the Typer app in-process (for the happy paths: fast, same commands)."""
    from tastebud.cli.main import State, _register, app

    _register()
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None, fails: bool = False):
        result = runner.invoke(app, list(args), input=input)
        if not fails:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    yield invoke
    if State._app is not None:
        State._app.close()
        State._app = None


# ------------------------------------------------------------------ errors, exit codes, stdin
def test_an_error_is_one_line_without_a_traceback(home, tmp_path):
    result = tastebud(home, "ingest", "events", str(tmp_path / "missing.csv"))
    assert result.returncode == 65
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing.csv" in lines[0]
    assert b"Traceback" not in result.stderr and result.stdout == b""

    odd = tmp_path / "[bold]odd[/x]-a-name-long-enough-to-wrap-at-eighty-columns.csv"
    result = tastebud(home, "ingest", "events", str(odd))
    assert result.stderr.decode().splitlines() == [f"error: no such file: {odd}"]  # not markup, not wrapped

    debug = tastebud(home, "--debug", "ingest", "events", str(tmp_path / "missing.csv"))
    assert debug.returncode != 0 and b"Traceback" in debug.stderr


def test_ingest_events_reads_stdin_and_fails_only_when_nothing_was_read(home):
    rows = (
        json.dumps({"user": "u1", "item": "i1", "type": "purchase", "ts": T, "value": 9.99}) + "\n"
        + "not json\n"
        + json.dumps({"user": "u2", "type": "search", "ts": T, "query": "noir"}) + "\n"
    ).encode()
    result = tastebud(home, "ingest", "events", "-", "--format", "jsonl", "--json", input=rows)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["events"]
    assert (summary["source"], summary["read"], summary["accepted"], summary["rejected"]) == ("<stdin>", 3, 2, 1)

    all_bad = tastebud(home, "ingest", "events", "-", "--format", "csv", input=b"user,item,type,ts\nu,i,teleport,1\n")
    assert all_bad.returncode == 0, all_bad.stderr  # something was read, even if it was all rejected

    nothing = tastebud(home, "ingest", "events", "-", "--format", "csv", input=b"")
    assert nothing.returncode != 0
    assert nothing.stderr.decode().strip().splitlines()[-1] == "error: nothing could be read"

    unguessable = tastebud(home, "ingest", "events", "-", input=b"x")
    assert unguessable.returncode != 0
    assert unguessable.stderr.decode().strip().splitlines() == [
        "error: cannot guess the format of stdin (pass --format csv or --format jsonl)"
    ]


# ------------------------------------------------------------------ status and quarantine
def test_status_json_keys_and_counts(cli, tmp_path):
    empty = json.loads(cli("status", "--json").stdout)
    assert STATUS_KEYS <= set(empty)
    assert (empty["events"], empty["first_event_at"], empty["quarantined"]) == (0, None, 0)

    path = tmp_path / "e.csv"
    path.write_text(f"user,item,type,ts,value\nu1,i1,rating,{T},4\nu2,i1,view,{T + 3600},\nu2,i2,view,soon,\n")
    assert cli("ingest", "events", str(path), "--json").exit_code == 0
    status = json.loads(cli("status", "--json").stdout)
    assert STATUS_KEYS <= set(status)
    assert {k: status[k] for k in STATUS_KEYS} == {
        "users": 2, "items": 1, "events": 2, "events_by_type": {"rating": 1, "view": 1},
        "first_event_at": "2000-07-30T18:45:03Z", "last_event_at": "2000-07-30T19:45:03Z",
        "quarantined": 1, "profiles_stale": 2,
    }
    table = cli("status")
    assert table.exit_code == 0 and "users" in table.stdout and "quarantined" in table.stdout


def test_quarantine_list_fix_and_retry(cli, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(f"user,item,type,ts\nu,a,click,{T}\nu,b,clik,{T}\nu,c,view,later\n")
    cli("ingest", "events", str(path))
    listed = json.loads(cli("quarantine", "list", "--json").stdout)
    assert [(r["line_no"], r["reason"]) for r in listed] == [(3, "unknown event type 'clik'"), (4, "unparsable timestamp 'later'")]

    first, second = listed
    fixed = json.loads(cli("quarantine", "fix", str(first["id"]), f"u,b,click,{T}", "--json").stdout)
    assert (fixed["accepted"], fixed["rejected"]) == (1, 0)
    still = cli("quarantine", "fix", str(second["id"]), "u,c,view,even later")
    assert f"row {second['id']} still rejected: unparsable timestamp" in still.stdout

    cli("quarantine", "fix", str(second["id"]), f"u,c,view,{T + 1}", "--no-retry")
    retried = json.loads(cli("quarantine", "retry", "--json").stdout)
    assert (retried["read"], retried["accepted"], retried["rejected"]) == (1, 1, 0)
    assert json.loads(cli("quarantine", "list", "--json").stdout) == []
    assert json.loads(cli("status", "--json").stdout)["events"] == 3

    missing = cli("quarantine", "fix", "999", "x", fails=True)
    assert isinstance(missing.exception, NotFoundError) and "no open quarantined row with id 999" in str(missing.exception)


def test_ingest_movielens_and_catalog_commands(cli, tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "movies.csv").write_text("movieId,title,genres\n1,Heat (1995),Action|Crime\n")
    (d / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n1,1,4.5,{T}\n2,1,3,{T}\n")
    result = cli("ingest", "movielens", str(d), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert (summary["catalog"]["accepted"], summary["events"]["accepted"]) == (1, 2)

    catalog = tmp_path / "c.jsonl"
    catalog.write_text(json.dumps({"id": "2", "name": "Ronin", "genres": ["Action"]}) + "\n")
    assert json.loads(cli("ingest", "catalog", str(catalog), "--json").stdout)["catalog"]["accepted"] == 1
    assert json.loads(cli("status", "--json").stdout)["items"] == 2
