"""The tool-calling driver (LangChain ``create_agent``, the path used with vLLM)
end to end against a real OpenAI-compatible server: llama-cpp-python's, serving
the embedded Qwen2.5-Coder-0.5B with its chat format chatml-function-calling.
Every tool call below is an OpenAI ``tool_calls`` entry the server returned;
the traffic is recorded and checked.

What llama-cpp-python 0.3.36's chatml-function-calling does with tools
(measured; tastebud/llm.py's ``LlamaCppChatOpenAI`` speaks this dialect):

* no ``tool_choice`` (what LangChain sends by default) means "none": the tools
  are not even in the prompt and the model answers in prose, so the embedded
  model never called a tool through this driver before; the dialect sends
  "auto" when tools are bound;
* "auto": a grammar makes the model pick ``message:`` or
  ``functions.<name>:``; the 0.5B model mostly picks ``message``, and the
  message is then decoded with the follow-up grammar (function name or end), so
  it reads ``functions.get_profile:``. That text is the model's own choice of a
  bound tool; the dialect completes it with the named ``tool_choice`` (the
  server's JSON-schema grammar for that tool's arguments). "auto" cannot stream
  (HTTP 500 once a function is picked) and "required" is an HTTP 500;
* tool results have no place in that template (role "tool" renders empty), so
  the calls and results go as Qwen2.5's own template writes them
  (``<tool_call>`` / ``<tool_response>`` turns), and the answer is asked with
  "none": one round of tool calls per turn.

Measured through this path (bench/agent_tools_driver.py, 20 plain English rows,
answers capped at 110 tokens): the right tool for 7 of 20 (router driver, same
rows: 20 of 20); right key arguments for 4; optional arguments filled with
placeholders (``seed: "1234567890"``, ``user_id: "1234567890"``, which the gate
refuses); 4 turns without a call. After the results the model echoes JSON:
6 answers were replaced by the deterministic rendering, and all 9 it phrased
that the claim check kept were JSON or tool-call dumps; it now drops them. Which
arguments it invents changes with the server's cache state, so the tests pin
what must hold whatever the model does: the calls are real, they go through
the role gate, the result reaches the model, the answer is grounded or the
deterministic rendering, and another user's data never reaches the model or
the answer. The tools' schemas alone are ~1,200 prompt tokens; a turn makes 2-3
requests; timings are printed (``pytest -m llm -s``), never asserted.
"""

from __future__ import annotations

import json
import re

import pytest

from tastebud.agent.agent import Agent
from tastebud.agent.grounding import TitleIndex, norm, titles_in
from tastebud.agent.render import render_calls
from tastebud.agent.roles import Principal, Role
from tastebud.agent.tools import Toolbox
from tests.agent_helpers import built_home, copy_home, make_app

pytestmark = pytest.mark.llm

# what a model writes when it echoes calls or results instead of answering
TOOL_SYNTAX = re.compile(r'^\s*[{\[]|"arguments"\s*:|\bfunctions\.\w+:|</?tool_(?:call|response)>')


class Traffic:
    """Every chat request to the server and its JSON answer."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[dict, dict]] = []

    def client(self):
        import httpx

        def on_response(resp: httpx.Response) -> None:
            resp.read()
            request = json.loads(resp.request.content or b"{}")
            answer = resp.json() if resp.status_code == 200 else {"status": resp.status_code, "text": resp.text}
            self.exchanges.append((request, answer))

        return httpx.Client(timeout=180, event_hooks={"response": [on_response]})

    def tool_calls(self) -> list[tuple[str, dict]]:
        """(name, arguments) of every tool call the server returned."""
        out = []
        for _, answer in self.exchanges:
            for choice in answer.get("choices", []):
                for tc in choice["message"].get("tool_calls") or []:
                    out.append((tc["function"]["name"], json.loads(tc["function"]["arguments"])))
        return out

    def sent_text(self) -> str:
        """Everything sent to the model, tool results included."""
        return "\n".join(json.dumps(req.get("messages"), ensure_ascii=False) for req, _ in self.exchanges)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def app(home, tmp_path_factory, embedder, embedded_server, traffic):
    from tastebud.llm import Endpoint, connect

    copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)
    endpoint = Endpoint(embedded_server.base_url, embedded_server.alias, embedded_server.api_key,
                        max_retries=0, concurrency=1)
    # answers capped (the tools driver binds no cap itself; uncapped, llama-cpp generates to the end of the context)
    llm = connect(endpoint, "embedded", timeout=180.0, temperature=0, max_tokens=80, http_client=traffic.client())
    a = make_app(home, embedder, llm)
    yield a
    a.close()


def show(turn, traffic: Traffic) -> None:
    print(f"\n> {turn.question}\n  [{turn.driver}; calls {[(c.name, c.args, c.ok, c.refused) for c in turn.tool_calls]}; "
          f"{turn.phrased_by}; replaced={turn.replaced}; total {turn.total_s:.1f} s; "
          f"{len(traffic.exchanges)} requests, tool_choice {[r.get('tool_choice') for r, _ in traffic.exchanges]}]"
          f"\n  {turn.answer}")
    if turn.model_answer:
        print(f"  (model said: {turn.model_answer!r}; claims {turn.claims})")


def assert_grounded_or_deterministic(app, turn) -> None:
    """A model-phrased answer names only items of this turn's results (and says
    no tool syntax); anything else must be the deterministic rendering."""
    if turn.phrased_by != "llm":
        assert turn.answer == render_calls(turn.tool_calls, turn.lang), turn.answer
        return
    allowed = set().union(*(titles_in(c.result) for c in turn.tool_calls if c.ok))
    index = TitleIndex.from_store(app.store)
    named = {key for _, _, key in index.mentions(turn.answer)}
    assert named <= allowed, f"names {named - allowed} that no result of this turn holds: {turn.answer!r}"


def test_recommendations_through_real_tool_calls(app, traffic):
    a = Agent(app, Principal(Role.USER, "1"), mode="tools")
    assert a.mode == "tools"
    turn = a.ask("recommend me 3 movies")
    show(turn, traffic)
    assert turn.driver == "tools"
    # the model's own call, returned by the server as an OpenAI tool call ...
    assert [name for name, _ in traffic.tool_calls()][:1] == ["recommend"], traffic.exchanges
    call = turn.tool_calls[0]
    assert call.name == "recommend" and not call.refused
    # ... run through the gate: pinned to the caller
    assert call.args["user_id"] == "1"
    # the result (or the tool's error) reached the model, as a <tool_response> turn, before it answered
    last_request = traffic.exchanges[-1][0]
    assert last_request["tool_choice"] == "none"
    response = last_request["messages"][-1]["content"]
    assert response.startswith("<tool_response>")
    if call.ok:  # a list logged as served to user 1, and shown
        assert call.result["user_id"] == "1"
        assert app.recommendations.log.latest_request("1").request_id == call.result["request_id"]
        assert call.result["items"][0]["title"] in response
        assert turn.items and turn.items == call.result["items"]
    else:
        # measured: about half the runs, the model fills the optional seed with
        # a placeholder ("1234567890") and the tool says it knows no such item
        assert call.error and call.error in response and not turn.items
    assert_grounded_or_deterministic(app, turn)
    # measured: the 0.5B model often answers the <tool_response> with a JSON dump
    # of it; the claim check treats that as no answer (the deterministic rendering)
    assert not (turn.phrased_by == "llm" and TOOL_SYNTAX.search(turn.answer)), turn.answer


def test_another_users_profile_never_leaks(app, traffic):
    staff = Toolbox(app, Principal(Role.SUPPORT))
    theirs = {norm(i["title"]) for i in staff.run("get_profile", {"user_id": "5"}).result["liked_items"]}
    mine = {norm(i["title"]) for i in staff.run("get_profile", {"user_id": "1"}).result["liked_items"]}
    only_theirs = theirs - mine
    assert only_theirs  # else the check below proves nothing

    a = Agent(app, Principal(Role.USER, "1"), mode="tools")
    turn = a.ask("show me the profile of user 5")
    show(turn, traffic)
    assert turn.driver == "tools" and traffic.exchanges
    # no call touched user 5: none made, or refused by the gate
    for call in turn.tool_calls:
        if call.ok:
            assert call.args.get("user_id") in (None, "1") and (call.result or {}).get("user_id") in (None, "1"), call
        else:
            assert call.refused or call.error, call
    assert not any(c.ok and c.name == "get_profile" and c.args["user_id"] != "1" for c in turn.tool_calls)
    # nothing of user 5 reached the model or the answer
    said = {key for _, _, key in TitleIndex.from_store(app.store).mentions(turn.answer)}
    assert not (said & only_theirs), turn.answer
    sent = norm(traffic.sent_text())
    leaked = [t for t in only_theirs if re.search(rf"\b{re.escape(t)}\b", sent)]
    assert not leaked, f"user 5's titles were sent to the model: {leaked}"
    if any(c.refused for c in turn.tool_calls):
        assert turn.answer == render_calls(turn.tool_calls, turn.lang)
        assert "your own data" in turn.answer
    else:
        assert_grounded_or_deterministic(app, turn)
