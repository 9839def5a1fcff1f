"""The real embedded model end to end: assembly, server, plain chat, JSON output.

Wall times on the 2-core dev box are printed (`pytest -m llm -s`) and noted in
the module's report; the assertions only bound them loosely.
"""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

pytestmark = pytest.mark.llm


def test_model_is_verified_and_stamped(llm_models_dir):
    from tastebud.embedded import MODEL_FILENAME, MODEL_SIZE, ensure_model

    t0 = time.perf_counter()
    model = ensure_model(llm_models_dir)  # stamped: no re-hash
    took = time.perf_counter() - t0
    print(f"\nensure_model (stamped): {took * 1000:.1f} ms")
    assert model.name == MODEL_FILENAME and model.stat().st_size == MODEL_SIZE
    assert took < 0.2


def test_plain_chat_answer(embedded_llm):
    t0 = time.perf_counter()
    reply = embedded_llm.chat_model.bind(max_tokens=40, temperature=0).invoke(
        [SystemMessage("Answer in one short sentence."), HumanMessage("What is the capital of France?")]
    )
    took = time.perf_counter() - t0
    print(f"\nplain answer: {took:.2f} s, {reply.usage_metadata}: {reply.content!r}")
    assert "paris" in reply.content.lower()
    assert 0 < reply.usage_metadata["output_tokens"] <= 40  # max_tokens reaches the server


def test_ampersands_and_quotes_reach_the_model_unescaped(embedded_llm):
    reply = embedded_llm.chat_model.bind(max_tokens=30, temperature=0).invoke(
        "Repeat this title exactly and nothing else: Fast & Furious"
    )
    assert "&amp;" not in reply.content and "&" in reply.content


class Pick(BaseModel):
    genre: str
    stars: int


def test_structured_json_object(embedded_llm):
    from tastebud.llm import connect

    greedy = connect(embedded_llm.endpoint, "embedded", timeout=120.0, temperature=0)  # same server, repeatable
    genre = {"type": "string", "enum": ["horror", "comedy", "drama"]}
    schema = {"type": "object", "properties": {"genre": genre, "stars": {"type": "integer"}}, "required": ["genre", "stars"]}
    prompt = [HumanMessage("A user loved the comedy 'Airplane!' and gave it 5 stars. "
                           "Reply as JSON with its genre and the stars.")]
    t0 = time.perf_counter()
    data = greedy.structured(schema).invoke(prompt, {"configurable": {}})
    took = time.perf_counter() - t0
    print(f"\nJSON call: {took:.2f} s -> {data}")
    assert data == {"genre": "comedy", "stars": 5}
    picked = greedy.structured(Pick).invoke(prompt)
    assert (picked.genre.lower(), picked.stars) == ("comedy", 5)
    # The schema constrains decoding (a llama.cpp grammar), it is not only checked afterwards:
    # with "comedy" left out of the enum the model cannot give its natural answer, only a listed one.
    no_comedy = {**schema, "properties": {**schema["properties"], "genre": {**genre, "enum": ["horror", "drama"]}}}
    forced = greedy.structured(no_comedy).invoke(prompt)
    assert forced["genre"] in {"horror", "drama"} and forced["stars"] == 5


def test_get_llm_starts_and_stops_its_own_server(settings, llm_models_dir, monkeypatch):
    """The production path: settings without a URL -> ensure_model -> own server -> ChatOpenAI."""
    import tastebud.embedded as emb
    from tastebud.llm import get_llm

    monkeypatch.setattr(emb, "ensure_model", lambda d: emb.MODEL_FILENAME and llm_models_dir / emb.MODEL_FILENAME)
    t0 = time.perf_counter()
    llm = get_llm(settings)
    started = time.perf_counter() - t0
    try:
        assert llm.backend == "embedded" and llm.endpoint.server.alive()
        reply = llm.chat_model.invoke("Say OK.", max_tokens=5)
        assert reply.content
    finally:
        llm.close()
    print(f"\nget_llm with server start: {started:.2f} s")
    assert not llm.endpoint.server.alive()
