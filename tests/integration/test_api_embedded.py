"""The service's LLM features with the real embedded model: a background
narrative written after a posted event, and a chat turn phrased by the model.
The server reuses the test session's embedded llama.cpp server (attached as a
detached server would be) rather than loading the model a second time."""

from __future__ import annotations

import pytest

from tests.api_helpers import T0, Server, copy_home, create_key, seed_home, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.llm]


@pytest.fixture(scope="module")
def llm_server(attach_embedded, tmp_path_factory):
    home = seed_home(tmp_path_factory.mktemp("api-llm") / "template")
    home = copy_home(home, home.parent / "home")
    attach_embedded(home)
    keys = {"operator": create_key(home, "operator"), "user_u1": create_key(home, "user", "u1")}
    srv = Server(home, serve_narratives=1, narrative_debounce_s=0.5, api_chat_phrasing=1, agent_mode="router",
                 api_chat_timeout_s=120).start()
    srv.keys = keys
    with srv.client(keys["operator"]) as c:  # the embedded server starts in the background
        wait_for("the chat LLM", lambda: c.get("/v1/status").json()["chat"]["llm"] in ("ready", "unavailable"),
                 timeout=300, every=1.0)
        assert c.get("/v1/status").json()["chat"]["llm"] == "ready", srv.log()
    yield srv
    srv.stop()


def test_a_posted_event_gets_a_background_narrative_from_the_model(llm_server):
    with llm_server.client(llm_server.keys["operator"]) as c:
        before = c.get("/v1/users/u1/profile").json()
        assert before["narrative_source"] == "stale"  # seeded with --no-narratives
        event = {"user_id": "u1", "item_id": "m7", "type": "rating", "value": 5, "timestamp": T0 + 86_400}
        posted = c.post("/v1/events", json=event).json()
        assert posted["accepted"] == 1

        def written():
            profile = c.get("/v1/users/u1/profile").json()
            return profile if profile["narrative_source"] in ("llm", "template") else None

        profile = wait_for("the background narrative", written, timeout=600, every=2.0)
        narratives = c.get("/v1/status").json()["live"]["narratives"]
    assert narratives["processed"] >= 1 and narratives["llm_errors"] == 0
    # From the model: its narrative was kept, or it answered and the checker overruled it
    # (then its answers' violations are on record; a model that never answered fails here).
    if profile["narrative_source"] != "llm":
        meta = profile.get("narrative_meta") or {}
        violations = meta.get("violations") or []
        assert meta.get("attempts", 0) >= 1 and violations, profile
        assert not any(v.startswith(("LLM error", "the model did not answer")) for v in violations), violations
    assert profile["long_term"]["narrative"] and profile["version"] > before["version"]


def test_chat_why_is_phrased_by_the_model_and_grounded(llm_server):
    with llm_server.client(llm_server.keys["user_u1"]) as c:
        recs = c.get("/v1/users/u1/recommendations", params={"k": 3}).json()
        top = recs["items"][0]
        turn = c.post("/v1/chat", json={"message": f"why was {top['title']} recommended to me?"}).json()
    assert [t["name"] for t in turn["tool_calls"]] == ["explain"], turn
    print(f"\n> why was {top['title']} recommended to me?\n  [{turn['phrased_by']}] {turn['answer']}")
    assert turn["grounded"] is True and turn["answer"].strip(), turn
    assert turn["phrased_by"] == "llm" or turn["replaced"], turn  # the model answered (or was overruled)
