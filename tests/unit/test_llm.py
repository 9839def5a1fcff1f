"""The LLM layer with fake chat models: backend choice, structured-output adapters, errors."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from tastebud import llm as llm_mod
from tastebud.errors import ModelError
from tastebud.llm import LLM, Endpoint, backend_name, get_llm, parse_json, schema_of, to_model_error

SCHEMA = {
    "type": "object",
    "properties": {"tool": {"type": "string", "enum": ["recommend", "explain"]}, "k": {"type": "integer"}},
    "required": ["tool"],
}


class Pick(BaseModel):
    tool: str
    k: int = 5


class Recording(FakeListChatModel):
    """A fake that remembers the keyword arguments of every call (bound ones included)."""

    calls: list = []

    def _call(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        return super()._call(messages, stop, run_manager, **kwargs)


def recording(*responses: str) -> Recording:
    return Recording(responses=list(responses), calls=[])


# backend selection -----------------------------------------------------------


def test_backend_follows_base_url(settings):
    assert backend_name(settings) == "embedded"
    settings.llm_base_url = "http://gpu-box:8000/v1"
    assert backend_name(settings) == "openai"


def test_openai_backend_builds_chat_openai(settings):
    from langchain_openai import ChatOpenAI

    settings.llm_base_url = "http://gpu-box:8000/v1/"
    settings.llm_model = "Qwen/Qwen2.5-7B-Instruct"
    settings.llm_api_key = "secret"
    settings.llm_timeout = 42.0
    settings.llm_concurrency = 16
    llm = get_llm(settings)
    assert llm.backend == "openai"
    assert type(llm.chat_model) is ChatOpenAI
    assert llm.chat_model.openai_api_base == "http://gpu-box:8000/v1"
    assert llm.chat_model.model_name == "Qwen/Qwen2.5-7B-Instruct"
    assert llm.chat_model.openai_api_key.get_secret_value() == "secret"
    assert llm.chat_model.request_timeout == 42.0
    assert llm.chat_model.max_retries == 2
    assert llm.concurrency == 16
    assert "secret" not in str(llm.describe())


def test_embedded_backend_uses_the_started_server(settings, monkeypatch, tmp_path):
    import tastebud.embedded as emb

    stopped = []

    class FakeServer:
        base_url, alias, api_key, pid = "http://127.0.0.1:1234/v1", settings.llm_model, "k", 99

        def start(self):
            return self

        def stop(self):
            stopped.append(True)

    seen = {}
    monkeypatch.setattr(emb, "ensure_model", lambda d: seen.setdefault("dir", d) and tmp_path / "m.gguf")
    monkeypatch.setattr(emb, "find_running", lambda s, m: None)
    monkeypatch.setattr(emb, "server_for", lambda s, m: FakeServer())
    llm = get_llm(settings)
    assert seen["dir"] == settings.models_dir
    assert llm.backend == "embedded" and llm.base_url == "http://127.0.0.1:1234/v1"
    assert llm.concurrency == 1  # the llama-cpp server runs one request at a time
    assert llm.chat_model.max_retries == 0
    assert llm.describe()["embedded_server_pid"] == 99
    llm.close()
    assert stopped == [True]


def test_embedded_sends_max_tokens_not_max_completion_tokens():
    """llama-cpp's server ignores max_completion_tokens (what ChatOpenAI sends)."""
    from langchain_openai import ChatOpenAI

    ep = Endpoint("http://127.0.0.1:1/v1", "m", "k", max_retries=0, concurrency=1)
    embedded = llm_mod.connect(ep, "embedded").chat_model
    payload = embedded._get_request_payload([HumanMessage("hi")], max_tokens=7)
    assert payload["max_tokens"] == 7 and "max_completion_tokens" not in payload
    plain = ChatOpenAI(base_url=ep.base_url, model="m", api_key="k")
    assert plain._get_request_payload([HumanMessage("hi")], max_tokens=7)["max_completion_tokens"] == 7


TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": {"type": "object", "properties": {}}}}
         for n in ("recommend", "get_profile")]


def _embedded_chat(handler=None):
    ep = Endpoint("http://127.0.0.1:1/v1", "m", "k", max_retries=0, concurrency=1)
    client = httpx.Client(transport=httpx.MockTransport(handler)) if handler else None
    return llm_mod.connect(ep, "embedded", **({"http_client": client} if client else {})).chat_model


def _reply(message: dict) -> httpx.Response:
    return httpx.Response(200, json={"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                                      "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", **message}}]})


def test_embedded_tool_calls_speak_llama_cpp():
    """llama-cpp's chatml-function-calling: no tool_choice means none there (auto
    is sent), auto cannot stream, tool results need a rendering its template has."""
    from langchain_core.messages import AIMessage, ToolMessage

    chat = _embedded_chat()
    assert chat.disable_streaming == "tool_calling"
    bound = chat.bind_tools(TOOLS).kwargs
    first = chat._get_request_payload([HumanMessage("recommend me a film")], **bound)
    assert first["tool_choice"] == "auto"
    call = AIMessage("", tool_calls=[{"name": "recommend", "args": {"k": 3}, "id": "c1", "type": "tool_call"}])
    after = chat._get_request_payload([HumanMessage("recommend me a film"), call, ToolMessage("RESULTS", tool_call_id="c1")], **bound)
    assert after["tool_choice"] == "none"  # answer from the results
    assert after["messages"][1:] == [
        {"role": "assistant", "content": '<tool_call>\n{"name": "recommend", "arguments": {"k": 3}}\n</tool_call>'},
        {"role": "user", "content": "<tool_response>\nRESULTS\n</tool_response>"},
    ]
    named = chat.bind_tools(TOOLS, tool_choice="get_profile").kwargs
    assert chat._get_request_payload([HumanMessage("hi")], **named)["tool_choice"]["function"]["name"] == "get_profile"
    assert "tool_choice" not in chat._get_request_payload([HumanMessage("hi")])  # no tools, nothing added


def test_embedded_completes_a_tool_choice_written_as_text():
    """Under auto, llama-cpp decodes a message with its follow-up grammar, so the
    model "answers" functions.<name>:; that is completed with the named choice."""
    import json

    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body.get("tool_choice"))
        if body["tool_choice"] == "auto":
            return _reply({"content": body["messages"][-1]["content"]})  # echo: the test picks the text
        name = body["tool_choice"]["function"]["name"]
        return _reply({"content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": '{"k": 2}'}}]})

    chat = _embedded_chat(handler).bind_tools(TOOLS)
    msg = chat.invoke([HumanMessage("functions.recommend:")])
    assert sent == ["auto", {"type": "function", "function": {"name": "recommend"}}]
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("recommend", {"k": 2})]
    sent.clear()
    for text in ("functions.status:", "I like functions.recommend: a lot"):  # not a bound tool / prose
        msg = chat.invoke([HumanMessage(text)])
        assert sent == ["auto"] and msg.content == text and not msg.tool_calls
        sent.clear()


def test_unknown_backend_is_a_model_error(settings):
    with pytest.raises(ModelError, match="unknown LLM backend"):
        get_llm(settings, backend="nope")


# structured output ------------------------------------------------------------


def test_embedded_adapter_binds_json_object_with_schema():
    fake = recording('{"tool": "explain"}')
    llm = LLM.from_chat_model(fake, backend="embedded")
    assert llm.structured(SCHEMA).invoke("why?") == {"tool": "explain"}
    assert fake.calls[-1]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_openai_adapter_binds_json_schema():
    fake = recording('{"tool": "recommend", "k": 3}')
    llm = LLM.from_chat_model(fake, backend="openai")
    assert llm.structured(Pick).invoke("recs") == Pick(tool="recommend", k=3)
    rf = fake.calls[-1]["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "Pick"
    assert rf["json_schema"]["schema"] == Pick.model_json_schema()


def test_openai_payload_keeps_our_response_format():
    """ChatOpenAI passes a bound response_format dict through unchanged."""
    from langchain_openai import ChatOpenAI

    llm = LLM.from_chat_model(ChatOpenAI(base_url="http://x/v1", model="m", api_key="k"), backend="openai")
    rf = llm.response_format(SCHEMA, name="pick tool")
    assert rf == {"type": "json_schema", "json_schema": {"name": "pick_tool", "schema": SCHEMA}}
    payload = llm.chat_model._get_request_payload([HumanMessage("x")], response_format=rf)
    assert payload["response_format"] == rf


def test_fake_backend_binds_nothing_and_still_parses():
    fake = recording('```json\n{"tool": "recommend"}\n```')
    llm = LLM.from_chat_model(fake)
    assert llm.response_format(SCHEMA) is None
    assert llm.structured(SCHEMA).invoke("x") == {"tool": "recommend"}
    assert "response_format" not in fake.calls[-1]


@pytest.mark.parametrize("answer", ["I think you should watch Heat.", '{"tool": ', ""])
def test_garbage_json_is_a_model_error(answer):
    llm = LLM.from_chat_model(FakeListChatModel(responses=[answer]), backend="embedded")
    with pytest.raises(ModelError, match="did not answer with JSON"):
        llm.structured(SCHEMA).invoke("x")


def test_json_that_breaks_the_schema_is_a_model_error():
    llm = LLM.from_chat_model(FakeListChatModel(responses=['{"tool": "delete_everything"}', '{"k": "x"}']))
    with pytest.raises(ModelError, match="does not match the schema at tool"):
        llm.structured(SCHEMA).invoke("x")
    with pytest.raises(ModelError, match="does not match Pick"):
        llm.structured(Pick).invoke("x")


def test_parse_json_tolerates_prose_around_one_object():
    assert parse_json('Sure! {"a": [1, 2]} hope that helps') == {"a": [1, 2]}
    assert parse_json("[1, 2]") == [1, 2]


def test_schema_of_names():
    assert schema_of(Pick)[0] == "Pick"
    assert schema_of({"title": "Tool choice!"})[0] == "Tool_choice_"
    with pytest.raises(TypeError):
        schema_of("not a schema")


# errors -----------------------------------------------------------------


class Flaky(GenericFakeChatModel):
    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        if "fail" in messages[-1].content:
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_model_errors_maps_endpoint_errors_only():
    """What the agent wraps its own chat-model calls in."""
    with pytest.raises(ModelError, match="cannot reach the LLM endpoint"):
        with llm_mod.model_errors():
            Flaky(messages=iter([])).invoke("fail now")
    with pytest.raises(ValueError, match="a bug"):  # not an endpoint error: passes through unchanged
        with llm_mod.model_errors():
            raise ValueError("a bug")


def test_error_mapping():
    req = httpx.Request("POST", "http://x/v1/chat/completions")
    assert "did not answer in time" in str(to_model_error(openai.APITimeoutError(request=req)))
    resp = httpx.Response(500, request=req, json={"error": {"message": "boom"}})
    err = to_model_error(openai.InternalServerError("boom", response=resp, body=None))
    assert "HTTP 500" in str(err)
    same = ModelError("x")
    assert to_model_error(same) is same


def test_importing_the_kernel_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, tastebud.llm, tastebud.embedded; "
        "heavy = [m for m in sys.modules if m.startswith(('langchain', 'llama_cpp', 'openai'))]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
