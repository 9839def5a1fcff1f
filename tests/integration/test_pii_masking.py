"""Issue 14 part 3: planted PII never reaches a prompt, a tag, an embedded text or a log.

A user's review, search and tag events plant an e-mail address, a Chinese mobile, a
card number, a Chinese ID number, addresses and names after a self-introduction
(English and Chinese; a name without a cue is not detected, by design), through
file ingestion and POST /v1/events. A refresh writes narratives with a recording
fake model (whose first answer itself leaks an address), chat turns ask about the
profile and the history (one question carries phone numbers) through both agent
drivers and through POST /v1/chat, and a recommendation with a free-text intent is
made. Then: no planted string in any recorded prompt, profile tag, narrative,
encoded text, log record or file under logs/; with TASTEBUD_STORE_RAW_TEXT=false
not in the events or quarantine tables either (with true the events keep it).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from tests.agent_helpers import prompt_text, scripted
from tests.api_helpers import CATALOG, T0, events_csv

pytestmark = pytest.mark.integration

U = "u-pii"
PLANTED = [
    "jane.doe@example.com", "13812345678", "4526 0181 5908 3012", "110105199003071239",
    "221B Baker Street", "北京市朝阳区建国路88号", "John Carter", "王小明",
    "+1 415-555-0132", "13987654321", "omar.h@example.org", "上海市浦东新区世纪大道100号",
]
# Needles as they would show after a JSON or whitespace rewrite, too.
NEEDLES = PLANTED + ["4526018159083012", "0181 5908", "415-555-0132", "Baker Street", "建国路88号", "Carter"]

REVIEWS = [
    ("m11", "review", "Loved the heist. Mail me at jane.doe@example.com or call 13812345678"),
    ("m7", "review", "my name is John Carter and this is the best crime film"),
    ("m3", "tag", "221B Baker Street"),
    ("m2", "review", "我叫王小明，住在北京市朝阳区建国路88号，这部片子很紧张"),
    (None, "search", "refund card 4526 0181 5908 3012 id 110105199003071239"),
]


def _files(data: Path) -> None:
    import csv

    (data / "catalog.csv").write_text(CATALOG)
    (data / "events.csv").write_text(events_csv())
    with (data / "u.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "type", "timestamp", "value", "text"])
        for n, item in enumerate(["m1", "m2", "m3", "m7"]):
            w.writerow([U, item, "rating", T0 + n * 3600, 4.5, ""])
        for n, (item, kind, text) in enumerate(REVIEWS):
            w.writerow([U, item or "", kind, T0 + (10 + n) * 3600, "", text])
        w.writerow([U, "m4", "frown", T0 + 20 * 3600, "", "call 13812345678"])  # quarantined: unknown type


NARRATIVE_LEAK = ("LONG: This viewer loves Crime and Thriller films such as Heat; they live at 221B Baker Street.\n"
                  "SHORT: Lately this viewer watches Crime, such as Heat.\nTAGS:")
NARRATIVE_OK = ("LONG: This viewer loves Crime and Thriller films such as Heat. They enjoy tense stories.\n"
                "SHORT: Lately this viewer watches Crime, such as Heat.\nTAGS:")


def _scan(blob: str) -> list[str]:
    """Planted strings in `blob`, whatever the case (tags are lowercased)."""
    blob = blob.casefold()
    return [n for n in NEEDLES if n.casefold() in blob]


@pytest.mark.parametrize("store_raw", [True, False], ids=["raw-kept", "raw-masked"])
def test_planted_pii_reaches_no_prompt_tag_vector_or_log(home, counting_embedder, caplog, store_raw):
    from fastapi.testclient import TestClient

    from tastebud.agent.agent import Agent
    from tastebud.agent.roles import Principal, Role
    from tastebud.api.app import create_app
    from tastebud.api.keys import KeyStore
    from tastebud.app import App
    from tastebud.retrieval.service import sync_item_vectors
    from tastebud.settings import load_settings

    caplog.set_level(logging.DEBUG)
    data = home.parent / "data"
    data.mkdir()
    _files(data)
    settings = load_settings(home=home, store_raw_text=store_raw, serve_narratives=False)
    narrator = scripted(NARRATIVE_LEAK, *[NARRATIVE_OK] * 6)
    chat_models = []
    app = App(settings, embedder=counting_embedder, llm=narrator)
    try:
        ing = app.ingestor()
        ing.ingest_catalog(str(data / "catalog.csv"))
        ing.ingest_events(str(data / "events.csv"))
        assert ing.ingest_events(str(data / "u.csv")).rejected == 1
        sync_item_vectors(app.store, app.vectors)
        refresher = app.refresher(narratives=True, concurrency=1)
        refresher.refresh(refresher.select_users(all_users=True), narratives=False)
        refresher.refresh([U], narratives=True)
        profile = app.profiles.require_latest(U)
        app.recommendations.recommend(U, 3, intent="crime like Heat, text me on 13987654321", source="cli")

        who = Principal(Role.USER, U)
        router_llm = scripted(*["You like crime thrillers such as Heat."] * 6)
        chat_models.append(router_llm.chat_model)
        router = Agent(app, who, llm=router_llm, mode="router")
        router.ask("what do you know about my taste? my number is +1 415-555-0132")
        router.ask("which reviews have I written? mail omar.h@example.org")
        tools_llm = scripted(("tool", "get_history", {}), "You reviewed Casino and Se7en.",
                             ("tool", "get_profile", {}), "You love crime films like Heat.")
        chat_models.append(tools_llm.chat_model)
        tools = Agent(app, who, llm=tools_llm, mode="tools")
        tools.ask("what have I reviewed lately? I'm at 上海市浦东新区世纪大道100号, phone 13987654321")
        tools.ask("describe my profile please")
        _, user_key = KeyStore(app.store).create("user", U, name="phone")
    finally:
        app.close()

    api_llm = scripted(*["You like crime thrillers such as Heat."] * 4)
    chat_models.append(api_llm.chat_model)
    with TestClient(create_app(settings, embedder=counting_embedder, llm=api_llm), raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {user_key}"}
        posted = client.post("/v1/events", headers=h, json={"events": [
            {"user_id": U, "item_id": "m8", "type": "review", "timestamp": T0 + 30 * 3600,
             "text": "funny. Hi, I'm John Carter, mail jane.doe@example.com"},
            {"user_id": U, "type": "frown", "timestamp": T0, "text": "card 4526 0181 5908 3012"},  # quarantined
        ]})
        assert posted.status_code == 200, posted.text
        chat = client.post("/v1/chat", headers=h, json={"message": "what do I like? call me on 13987654321"})
        assert chat.status_code == 200, chat.text
        assert client.get(f"/v1/users/{U}/recommendations", params={"k": 3}, headers=h).status_code == 200

    # every prompt any model was given: the narrator's and the three chats'
    prompts = [prompt_text(m) for m in narrator.chat_model.seen]
    prompts += [prompt_text(m) for model in chat_models for m in model.seen]
    assert len(narrator.chat_model.seen) == 2, "the leaking narrative earns one regeneration"
    assert sum(len(model.seen) for model in chat_models) >= 5
    leaks = {f"prompt {i}": _scan(p) for i, p in enumerate(prompts) if _scan(p)}
    assert "[email]" in "\n".join(prompts) or "[phone]" in "\n".join(prompts)  # the masks are there, not the data

    tags = [t["tag"] for h in ("long_term", "short_term") for t in profile[h]["tags"]] + \
           [t["tag"] for t in profile["dislikes"]["tags"]]
    leaks["tags"] = _scan("\n".join(tags))
    leaks["narratives"] = _scan(profile["long_term"]["narrative"] + profile["short_term"]["narrative"])
    leaks["encoded"] = _scan("\n".join(counting_embedder.encoded))
    leaks["log records"] = _scan("\n".join(r.getMessage() for r in caplog.records))
    log_files = [p for p in (home / "logs").rglob("*") if p.is_file()]
    assert log_files  # the access log at least
    leaks["log files"] = _scan("\n".join(p.read_text(errors="replace") for p in log_files))

    with sqlite3.connect(home / "tastebud.db") as db:
        event_text = "\n".join(r[0] or "" for r in db.execute("SELECT text FROM events WHERE user_id = ?", (U,)))
        quarantined = "\n".join(r[0] or "" for r in db.execute("SELECT raw FROM quarantine"))
    if store_raw:
        assert "jane.doe@example.com" in event_text and "110105199003071239" in event_text  # kept as sent
    else:
        leaks["events"] = _scan(event_text)
        leaks["quarantine"] = _scan(quarantined)
        assert "[email]" in event_text and "[id_number]" in event_text
    assert not {k: v for k, v in leaks.items() if v}, leaks


def test_a_logged_error_that_echoes_user_text_is_masked_in_the_log_file(home, counting_embedder, monkeypatch):
    """A bug that puts the posted review in its exception message: the traceback in
    TASTEBUD_HOME/logs/errors.log carries the message, masked (tastebud/logmask.py)."""
    from fastapi.testclient import TestClient

    import tastebud.api.ingest as api_ingest
    from tastebud.api.app import create_app
    from tastebud.api.keys import KeyStore
    from tastebud.app import App
    from tastebud.settings import load_settings

    settings = load_settings(home=home)
    app = App(settings, embedder=counting_embedder, llm=scripted("ok"))
    try:
        _, user_key = KeyStore(app.store).create("user", U, name="phone")
    finally:
        app.close()

    def broken(store, key, objects, rules):
        raise ValueError(f"malformed review row {objects[0]!r}")

    monkeypatch.setattr(api_ingest, "ingest", broken)
    text = ("my name is John Carter, mail jane.doe@example.com or 13812345678; card 4526 0181 5908 3012, "
            "我叫王小明，住在北京市朝阳区建国路88号")
    with TestClient(create_app(settings, embedder=counting_embedder, llm=scripted("ok")),
                    raise_server_exceptions=False) as client:
        posted = client.post("/v1/events", headers={"Authorization": f"Bearer {user_key}"}, json={"events": [
            {"user_id": U, "item_id": "m1", "type": "review", "timestamp": T0, "text": text}]})
        assert posted.status_code == 500
    blob = (home / "logs" / "errors.log").read_bytes().decode("utf-8")
    assert "Traceback" in blob and "ValueError: malformed review row" in blob  # the error is logged ...
    assert "[email]" in blob and "[phone]" in blob and "[name]" in blob  # ... with its PII masked
    assert not _scan(blob), _scan(blob)
