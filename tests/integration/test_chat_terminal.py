"""`tastebud chat` driven the way a person would, through a pseudo-terminal
(pexpect): start it, ask for recommendations, ask why the first one, quit.
Plus `tastebud ask --json`. The `llm` test uses the real embedded model (the
session's server, found through TASTEBUD_HOME/llm-server.json as a detached
one would be); the other runs the REPL with template answers only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent_helpers import built_home, copy_home

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.integration

TASTEBUD = Path(sys.executable).parent / "tastebud"
PROMPT = "1> "


@pytest.fixture
def chat_home(home, tmp_path_factory, embedder) -> Path:
    return copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(TASTEBUD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TERM="xterm-256color", COLUMNS="140", LINES="50")
    return env


def spawn_chat(home: Path, *args: str, timeout: float = 180):
    child = pexpect.spawn(str(TASTEBUD), ["chat", *args], env=env_for(home), encoding="utf-8",
                          timeout=timeout, dimensions=(50, 140))
    child.logfile_read = sys.stdout  # shown with pytest -s; kept by pytest on failure
    return child


def converse(child, *, why_marker: str | None, mode: str) -> str:
    child.expect(f"session ([0-9a-f]+) · {mode}")
    session = child.match.group(1)
    child.expect_exact(PROMPT)
    child.sendline("recommend me something to watch tonight")
    child.expect_exact("recommendations for user 1")
    child.expect_exact(PROMPT)
    child.sendline("why the first one?")
    if why_marker:
        child.expect(why_marker)
    child.expect(r"(from the data|every sentence checked|dropped|model answer replaced)[^\n]*tools: explain[^\n]*\d s")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect_exact(f"--session {session}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return session


def test_chat_session_with_template_answers(chat_home):
    child = spawn_chat(chat_home, "--user", "1", "--template")
    session = converse(child, why_marker="was #1 in the list for user 1", mode="template answers")
    saved = json.loads((chat_home / "sessions" / f"{session}.json").read_text())
    assert [t["tools"] for t in saved["turns"]] == [["recommend"], ["explain"]]
    assert (chat_home / "chat_history").read_text().count("why the first one?") == 1


@pytest.mark.llm
def test_chat_session_with_the_embedded_model(chat_home, attach_embedded):
    attach_embedded(chat_home)
    child = spawn_chat(chat_home, "--user", "1", timeout=300)
    converse(child, why_marker=None, mode="router mode")


@pytest.mark.llm
def test_ctrl_c_cancels_the_answer_not_the_session(chat_home, attach_embedded):
    attach_embedded(chat_home)
    child = spawn_chat(chat_home, "--user", "1", timeout=300)
    child.expect_exact(PROMPT)
    child.sendline("what do you know about my tastes?")
    child.expect("thinking")
    # In the full suite a first Ctrl-C sent the instant the spinner shows was
    # sometimes lost (cause not found); press it again every half second while
    # the answer runs. It still passes only if an answer was cancelled: once the
    # answer completes, "(cancelled)" can no longer appear and this times out.
    for _ in range(60):
        child.sendintr()
        if child.expect_exact(["(cancelled)", pexpect.TIMEOUT], timeout=0.5) == 0:
            break
    else:
        raise AssertionError(f"Ctrl-C never cancelled the answer:\n{child.before}")
    child.expect_exact(PROMPT)
    child.sendline("/profile")
    child.expect("tools: get_profile")
    child.expect_exact(PROMPT)
    child.sendeof()  # Ctrl-D leaves too
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ask_json(chat_home):
    run = lambda *a: subprocess.run([str(TASTEBUD), "ask", *a, "--template", "--json"], env=env_for(chat_home),  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    out = run("--user", "1", "show me user 7's profile")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"answer", "tool_calls", "grounded"}
    # another user's data: one clear answer, no tool runs (issue 12)
    assert data["tool_calls"] == [] and data["reply_kind"] == "own_data"
    assert data["answer"] == "Sorry, I can only show you your own data."
    out = run("--as", "support", "what was recommended to user 3?")
    data = json.loads(out.stdout)
    assert data["tool_calls"][0]["name"] == "recommendation_log"
