"""The live workers run without HTTP (docs/design.md#live-updates): a CLI daemon
or a test builds the composition root, starts `LiveUpdates`, writes events
through the store, and profiles, their vectors and the item side follow."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tastebud.live import LiveUpdates
from tests.profile_helpers import item, rating

pytestmark = pytest.mark.integration

LIVE = Path(__file__).resolve().parents[2] / "tastebud" / "live"
HTTP = ("fastapi", "starlette", "uvicorn", "tastebud.api")
ABOVE = ("tastebud.app", "tastebud.cli")


def wait_for(predicate, what: str, deadline_s: float = 120.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add("tastebud.live" if node.level else node.module)
    return found


def test_the_live_package_imports_nothing_of_http_or_the_composition_root():
    sources = sorted(LIVE.glob("*.py"))
    assert {p.name for p in sources} >= {"updates.py", "ports.py"}
    offending = {f"{p.name}: {m}" for p in sources for m in imported_modules(p)
                 if any(m == bad or m.startswith(bad + ".") for bad in HTTP + ABOVE)}
    assert offending == set()
    # and nothing it pulls in brings HTTP along (a fresh process: the test session may hold fastapi)
    probe = ("import sys, tastebud.live; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HTTP!r} or m.startswith({HTTP + ABOVE!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workers_run_without_http(home, embedder):
    from tastebud.app import App
    from tastebud.settings import load_settings

    app = App(load_settings(home=home, item_side_refresh_events=1, item_side_refresh_s=0), embedder=embedder)
    live = LiveUpdates(app, narratives=False)  # narratives need an LLM; test_live.py covers them
    try:
        app.store.upsert_items([item("a", ["Crime"]), item("b", ["Drama"]), item("c", ["Comedy"])])
        live.start()

        app.store.write_batch([rating("u", "a", 5.0, 0)])  # as any writer would, through the store
        live.events_accepted(["u"])
        head = wait_for(lambda: app.profiles.head("u"), "the first profile")
        assert head["last_event_seq"] == app.store.user_last_seqs(["u"])["u"]
        wait_for(lambda: {m.get("version") for m in app.vectors.profiles.metadata(["u:long", "u:short"]).values()}
                 == {head["version"]}, "the profile vectors")

        # read-your-writes with no call to events_accepted: ensure_fresh refreshes at once
        app.store.write_batch([rating("u", "b", 4.0, 1)])
        assert app.store.is_lagging("u")
        live.ensure_fresh("u")
        assert not app.store.is_lagging("u")
        assert app.profiles.head("u")["version"] == head["version"] + 1

        # a new catalog item (a stub named by an event): embedded, then the item side is swapped in
        old_side = app.recommendations.side
        app.store.write_batch([rating("v", "brand-new", 5.0, 2)])
        live.events_accepted(["v"])
        wait_for(lambda: "brand-new" in app.vectors.items.metadata(["brand-new"]), "the new item's vector")
        wait_for(lambda: app.recommendations.side is not old_side and "brand-new" in app.recommendations.side.index,
                 "the rebuilt item side")

        stats = live.stats()
        assert stats["running"] and stats["errors"] == 0, stats["last_error"]
        assert stats["live"]["refreshed_users"] >= 3 and stats["live"]["ensure_fresh_refreshes"] == 1
        assert stats["item_side"]["rebuilds"] >= 1

        app.store.write_batch([rating("w", "c", 3.0, 3)])
        live.events_accepted(["w"])
        live.stop(timeout=60)  # flushes the computed refreshes it was told of
        assert live.stats()["running"] is False
        assert app.store.lagging_users() == []
    finally:
        live.stop(timeout=60)  # idempotent
        app.close()
