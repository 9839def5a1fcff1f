"""The chat agent: one turn = pick tools, run them under the role gate, phrase
the answer, check it is grounded, remember the turn.

Two drivers over the same `Toolbox`:

* ``tools``: LangChain's tool-calling agent (``langchain.agents.create_agent``)
  for endpoints that call tools reliably: vLLM serving a Qwen model started
  with ``--enable-auto-tool-choice --tool-call-parser hermes``.
* ``router``: for the embedded 0.5B model, which picks the right tool for
  about a third of plain questions through ``tools`` (tastebud/llm.py's
  llama-cpp dialect, tests/integration/test_agent_tool_calling.py,
  bench/agent_tools_driver.py): `tastebud.agent.router` picks the tool by rules and
  embedding similarity, one constrained call fills free-text arguments, code
  runs the tool, a second call phrases the answer from the result.

``agent_mode`` "auto" picks ``tools`` for the openai backend and ``router``
otherwise. ``phrasing=False`` (``tastebud chat --template``) never calls the
LLM: answers are the deterministic renderings.

Every answer is checked before it is shown, claim by claim
(`tastebud.agent.claims`): each sentence must be supported by this turn's tool
results (titles, numbers, who did what, other users, the user's own words,
"you" to an end user). Tokens are released sentence by sentence while every
sentence so far passes; an unsupported sentence is dropped, and when what is
left no longer answers the question (or the answer repeats instructions) the
whole answer becomes the deterministic rendering of the results.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from tastebud import pii
from tastebud.agent.claim_facts import split_sentences
from tastebud.agent.claims import ClaimChecker
from tastebud.agent.grounding import UNTRUSTED_NOTE, Grounding, as_data, clip, tokens
from tastebud.agent.render import render_calls
from tastebud.agent.roles import Principal, Role
from tastebud.agent.messages import help_text, say
from tastebud.agent.parsing_zh import language
from tastebud.agent.router import Plan, Router, opt_request
from tastebud.agent.session import Session
from tastebud.agent.tools import ToolCall, Toolbox
from tastebud.errors import ModelError

if TYPE_CHECKING:
    from tastebud.agent.ports import AgentServices

log = logging.getLogger(__name__)
_CJK = re.compile(r"[\u4e00-\u9fff]")

PHRASED = frozenset({"recommend", "explain", "get_profile", "get_history", "search_items", "recommendation_log"})
MAX_ANSWER_TOKENS = 110
TextFn = Callable[[str], None]


class Cancelled(Exception):
    """The user cancelled the answer (Ctrl-C); the session is unchanged."""


@dataclass
class Turn:
    question: str
    answer: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    grounded: bool = True
    replaced: bool = False  # the model's answer was replaced by the deterministic rendering
    ungrounded: list[str] = field(default_factory=list)
    driver: str = "router"
    plan: str | None = None
    phrased_by: str = "template"  # "llm" | "template"
    first_token_s: float | None = None
    total_s: float = 0.0
    model_answer: str | None = None  # what the model said, when it was replaced or cut
    claims: dict[str, Any] = field(default_factory=lambda: {"checked": 0, "dropped": []})  # the claim check
    lang: str = "en"  # the question's language, and so the answer's
    reply_kind: str | None = None  # a reply without a tool: out_of_scope, own_data, ask_back, help

    @property
    def items(self) -> list[dict[str, Any]]:
        for c in reversed(self.tool_calls):
            if c.ok and c.name in ("recommend", "recommendation_log", "search_items"):
                return c.result["items"]  # type: ignore[index]
        return []

    @property
    def table_call(self) -> ToolCall | None:
        for c in reversed(self.tool_calls):
            if c.ok and c.name in ("recommend", "recommendation_log", "search_items"):
                return c
        return None

    def as_dict(self, session_id: str | None = None) -> dict[str, Any]:
        out = {
            "answer": self.answer,
            "tool_calls": [c.as_dict() for c in self.tool_calls],
            "grounded": self.grounded,
            "replaced": self.replaced,
            "driver": self.driver,
            "phrased_by": self.phrased_by,
            "lang": self.lang,
            "items": [{"rank": i.get("rank"), "item_id": i["item_id"], "title": i["title"]} for i in self.items],
            "timing": {"first_token_s": None if self.first_token_s is None else round(self.first_token_s, 3),
                       "total_s": round(self.total_s, 3)},
        }
        out["claims"] = self.claims
        if self.reply_kind:
            out["reply_kind"] = self.reply_kind
        if self.ungrounded:
            out["ungrounded"] = self.ungrounded
        if session_id:
            out["session"] = session_id
        return out


class SentenceGate:
    """Streams text to `on_text` a sentence at a time, each sentence checked on
    its own (`check(sentence)`), only while every sentence so far passed; after
    the first unsupported sentence nothing more is streamed (the settled answer
    is shown at the end). `split(text)` gives (start, end, closed) sentence
    spans (`tastebud.agent.claims.split_sentences` by default)."""

    def __init__(self, check: Callable[[str], Grounding], on_text: TextFn | None,
                 split: Callable[[str], list[tuple[int, int, bool]]] | None = None):
        self.check = check
        self.split = split or split_sentences
        self.on_text = on_text
        self.text = ""
        self.consumed = 0  # characters of `text` already judged
        self.shown = ""
        self.failed = False
        self.problems: list[Grounding] = []
        self.first_token_at: float | None = None

    def feed(self, piece: str) -> None:
        if not piece:
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.text += piece
        if self.failed or self.on_text is None:
            return
        self._advance(final=False)

    def _advance(self, final: bool) -> None:
        rest = self.text[self.consumed :]
        for start, end, closed in self.split(rest):
            if not closed and not final:
                break
            sentence = rest[start:end]
            result = self.check(sentence.strip()) if sentence.strip() else Grounding(True, [])
            if not result.grounded:
                self.problems.append(result)
                self.failed = True
                return
            self.consumed += end - start
            self.shown += sentence
            if self.on_text is not None:
                self.on_text(self.shown.strip())

    def close(self) -> Grounding:
        """Judge (and, if all passed, release) the rest; the verdict on the whole text."""
        if not self.failed:
            self._advance(final=True)
        if not self.failed:
            return Grounding(True, [])
        bad: list[str] = []
        for g in self.problems:
            bad += [u for u in g.ungrounded if u not in bad]
        return Grounding(False, bad, [r for g in self.problems for r in g.reasons])

    def reset(self) -> None:
        self.text, self.consumed, self.shown, self.failed, self.problems = "", 0, "", False, []
        if self.on_text is not None:
            self.on_text("")


class Agent:
    def __init__(
        self,
        app: "AgentServices",
        principal: Principal,
        session: Session | None = None,
        *,
        llm: Any = None,
        mode: str | None = None,
        phrasing: bool = True,
        max_tokens: int = MAX_ANSWER_TOKENS,
    ):
        """`llm`: the chat model client to use (the API passes one with its chat
        timeout); by default the services' own, started on first use."""
        self.app = app
        self._llm = llm
        self.principal = principal
        self.session = session or Session.new(principal.role.value, principal.user_id)
        if principal.role is Role.USER:
            self.session.target_user = principal.user_id
        self.toolbox = Toolbox(app, principal, self.session)
        self.router = Router(self.toolbox, app.embedder)
        self.phrasing = phrasing
        self.max_tokens = max_tokens
        self._mode = mode or getattr(app.settings, "agent_mode", "auto") or "auto"
        self.cancel = threading.Event()

    # ------------------------------------------------------------ public
    @property
    def mode(self) -> str:
        if self._mode in ("tools", "router"):
            return self._mode if self.phrasing else "router"
        if not self.phrasing:
            return "router"
        if self._llm is not None or self.app.started("llm"):
            backend = self.llm.backend
        else:
            from tastebud.llm import backend_name

            backend = backend_name(self.app.settings)
        return "tools" if backend == "openai" else "router"

    @property
    def llm(self) -> Any:
        return self._llm if self._llm is not None else self.app.llm

    def warm_up(self) -> None:
        """Load what the first turn would (embedder, intent vectors, catalog titles, LLM)."""
        _ = self.router.matcher
        _ = self.toolbox.titles
        if self.phrasing:
            _ = self.llm

    def ask(self, text: str, on_text: TextFn | None = None) -> Turn:
        """Answer one message. `on_text(text_so_far)` receives the grounded
        answer as it streams ("" resets it). Raises KeyboardInterrupt/Cancelled
        untouched so the caller can cancel; the session then keeps no trace."""
        t0 = time.perf_counter()
        self.cancel.clear()
        self.toolbox.begin_turn()
        text = (text or "").strip()
        snapshot = _snapshot(self.session)
        try:
            if text.startswith("/") or self.mode == "router" or opt_request(text) is not None:  # opt-out: by rule
                turn = self._router_turn(text, on_text, t0)
            else:
                turn = self._tools_turn(text, on_text, t0)
        except (KeyboardInterrupt, Cancelled):
            _restore(self.session, snapshot)
            raise
        turn.total_s = time.perf_counter() - t0
        self.session.remember_turn(text, turn.answer, [c.name for c in turn.tool_calls])
        return turn

    def save(self) -> None:
        self.session.save(self.app.settings.home)

    # ------------------------------------------------------------ router driver
    def _router_turn(self, text: str, on_text: TextFn | None, t0: float) -> Turn:
        plan = self.router.plan(text)
        turn = Turn(text, "", driver="router", plan=plan.describe(), lang=plan.lang, reply_kind=plan.reply_kind)
        if plan.set_user:
            if self.principal.is_staff:
                self.session.target_user = plan.set_user
            elif plan.tool is None:
                turn.reply_kind = "own_data"
                return self._finish_fixed(turn, say("own_data", plan.lang), on_text)
        if plan.tool is None:
            reply = plan.reply or (say("now_looking_at", plan.lang, user=plan.set_user) if plan.set_user
                                   else help_text(self.principal.role.value, plan.lang))
            return self._finish_fixed(turn, reply, on_text)
        if plan.fill and self.phrasing:
            self._fill(plan, text)
        elif plan.fill and plan.fill not in plan.args and plan.residual:
            plan.args[plan.fill] = plan.residual
        call = self.toolbox.run(plan.tool, plan.args)
        turn.tool_calls = list(self.toolbox.calls)
        deterministic = render_calls(turn.tool_calls, turn.lang)
        if not call.ok or call.name not in PHRASED or not self.phrasing:
            return self._finish_fixed(turn, deterministic, on_text)
        return self._phrase(turn, text, call, deterministic, on_text, t0)

    def _finish_fixed(self, turn: Turn, answer: str, on_text: TextFn | None) -> Turn:
        turn.answer, turn.phrased_by = answer, "template"
        if on_text is not None:
            on_text(answer)
        return turn

    def _fill(self, plan: Plan, question: str) -> None:
        """The one constrained call: a short free-text argument, accepted only
        when its content words all come from the user's message."""
        from pydantic import BaseModel, Field

        what = {"intent": "what kind of movie the user is in the mood for", "query": "what to search the catalog for"}[plan.fill]  # type: ignore[index]

        class Fill(BaseModel):
            value: str | None = Field(None, description=what)

        question = pii.mask(question)  # the model sees no PII; the value comes from these words
        prompt = [
            ("system", f"Extract {what} from the user's message as a short phrase (2-6 words) using the user's own "
                       "words, or null if the message says nothing about it. Reply with JSON only."),
            ("human", f"Message: {question}"),
        ]
        value = None
        try:
            from tastebud.llm import LLM

            llm = self.llm
            short = LLM(llm.chat_model.bind(max_tokens=48, temperature=0), llm.backend, concurrency=llm.concurrency)
            got = short.structured(Fill).invoke(prompt)
            value = (got.value or "").strip() or None
        except ModelError as exc:
            log.info("argument fill failed: %s", pii.mask(str(exc)))
        if value:
            asked = {w.lower() for w in tokens(question)}
            if not all(w.lower() in asked for w in tokens(value)):
                log.info("fill %r rejected: words not in the message", pii.mask(value))
                value = None
        if value:
            plan.args[plan.fill] = clip(value, 120)  # type: ignore[index]
        elif plan.fill not in plan.args and plan.residual:
            plan.args[plan.fill] = plan.residual  # type: ignore[index]

    def _phrase(self, turn: Turn, question: str, call: ToolCall, deterministic: str, on_text: TextFn | None, t0: float) -> Turn:
        results = [c.result for c in turn.tool_calls if c.ok]
        messages = self._phrase_prompt(question, call, turn.lang)
        checker = self._checker(results, question, messages[0][1], turn.lang)
        gate = SentenceGate(checker.check_sentence, on_text, checker.split)
        model = self.llm.chat_model.bind(max_tokens=self.max_tokens, temperature=0.2)
        from tastebud.llm import model_errors

        try:
            with model_errors():
                for chunk in model.stream(messages):
                    if self.cancel.is_set():
                        raise Cancelled()
                    gate.feed(_chunk_text(chunk))
        except ModelError as exc:
            log.warning("phrasing failed, using the deterministic answer: %s", pii.mask(str(exc)))
            gate.failed = True
            gate.text = ""
        if gate.first_token_at is not None:
            turn.first_token_s = gate.first_token_at - t0
        return self._settle(turn, gate, checker, deterministic, on_text)

    def _checker(self, results: Any, question: str, system_prompt: str, lang: str = "en") -> ClaimChecker:
        audience = "staff" if self.principal.is_staff else "user"
        return ClaimChecker(results, self.toolbox.titles, question, audience, system_prompt, lang=lang)

    def _settle(self, turn: Turn, gate: SentenceGate, checker: ClaimChecker, deterministic: str,
                on_text: TextFn | None) -> Turn:
        """The model's answer, claim by claim: the supported sentences when they
        still answer the question, else the deterministic rendering."""
        answer = gate.text.strip()
        report = checker.review(answer) if answer else None
        if report is not None:
            turn.claims = report.as_dict()
            turn.ungrounded = report.ungrounded
        if report is not None and report.keep and report.kept_text and turn.lang == "zh" \
                and len(_CJK.findall(report.kept_text)) < 2:
            report.fallback = "not in the user's language (Chinese)"  # a bare list of English titles
            turn.claims = report.as_dict()
        elif report is not None and report.keep and report.kept_text:
            turn.answer, turn.phrased_by = report.kept_text, "llm"
            if report.dropped:
                turn.model_answer = answer
            if on_text is not None and gate.shown.strip() != turn.answer:
                on_text(turn.answer)
            return turn
        turn.model_answer = answer or None
        turn.replaced = bool(answer)
        turn.answer = deterministic or say("no_answer", turn.lang)
        turn.phrased_by = "template"
        if on_text is not None:
            on_text(turn.answer)
        return turn

    def _phrase_prompt(self, question: str, call: ToolCall, lang: str = "en") -> list[tuple[str, str]]:
        if self.principal.role is Role.USER:
            who = "the user themself (call them \"you\")"
        else:
            who = f"a {self.principal.role.value} staff member about a customer (call the customer \"the user\")"
        how = {
            "recommend": "In two sentences, name the top two recommended titles and give the reason listed for each.",
            "explain": "In two or three sentences, explain why the item was recommended, using only the reasons listed.",
            "get_profile": "In two sentences, describe this taste profile.",
            "get_history": "In two sentences, summarise this recent activity.",
            "search_items": "In one or two sentences, say which titles best match the search.",
            "recommendation_log": "In one or two sentences, say what was recommended and when.",
        }[call.name]
        answer_in = " Answer in Simplified Chinese (简体中文), keeping titles as written." if lang == "zh" else ""
        system = (
            f"You are tastebud, a movie assistant talking to {who}. {how}{answer_in} Use only facts from the data; "
            "copy titles exactly and name no other movie. " + UNTRUSTED_NOTE
        )
        if call.name == "explain":  # code resolved "the second one": give the model the plain request
            r = call.result or {}
            subject = "the user, speaking to them as \"you\"" if self.principal.role is Role.USER else f"user {r['user_id']}"
            question = f"Explain why {r['title']} was recommended to {subject}."
            if lang == "zh":
                question = f"请解释为什么向{'你' if self.principal.role is Role.USER else '用户' + str(r['user_id'])}推荐《{r['title']}》。"
        return [("system", system), ("human", f"{pii.mask(question)}\n\n{as_data(_compact(call, lang))}")]

    # ------------------------------------------------------------ tool-calling driver
    def _tools_turn(self, text: str, on_text: TextFn | None, t0: float) -> Turn:
        from langchain.agents import create_agent
        from langgraph.errors import GraphRecursionError
        from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

        from tastebud.llm import model_errors

        turn = Turn(text, "", driver="tools", lang=language(text))
        tools = self.toolbox.langchain_tools()
        system_prompt = self._tools_system_prompt(turn.lang)
        model = self.llm.chat_model
        if "max_tokens" in getattr(type(model), "model_fields", {}) and getattr(model, "max_tokens", None) is None:
            # uncapped, llama-cpp's server writes until the context is full
            model = model.model_copy(update={"max_tokens": self.max_tokens})
        graph = create_agent(model=model, tools=tools, system_prompt=system_prompt)
        results_of = lambda: [c.result for c in self.toolbox.calls if c.ok]  # noqa: E731
        checker = self._checker(results_of, text, system_prompt, turn.lang)
        gate = SentenceGate(checker.check_sentence, on_text, checker.split)
        final: list[Any] = []
        current_id: str | None = None
        try:
            with model_errors():
                for mode, payload in graph.stream({"messages": [HumanMessage(pii.mask(text))]}, {"recursion_limit": 12},
                                                  stream_mode=["messages", "values"]):
                    if self.cancel.is_set():
                        raise Cancelled()
                    if mode == "values":
                        final = payload.get("messages", final)
                        continue
                    chunk, meta = payload
                    if not isinstance(chunk, (AIMessageChunk, AIMessage)):
                        continue
                    if chunk.id != current_id:
                        current_id = chunk.id
                        if gate.text:
                            gate.reset()
                    if getattr(chunk, "tool_call_chunks", None) or getattr(chunk, "tool_calls", None):
                        continue
                    gate.feed(_chunk_text(chunk))
        except (ModelError, GraphRecursionError) as exc:  # a model that keeps calling tools ends the loop
            log.warning("tool-calling agent failed: %s", pii.mask(str(exc)))
            final = []
        offered = {t.name for t in tools}
        last_ai = None
        for msg in final:
            if isinstance(msg, AIMessage):
                for tc in msg.tool_calls or []:
                    if tc["name"] not in offered:  # never offered: record the refusal
                        self.toolbox.run(tc["name"], tc.get("args") or {})
                last_ai = msg
        turn.tool_calls = list(self.toolbox.calls)
        if last_ai is not None and not last_ai.tool_calls:
            gate.text = _chunk_text(last_ai)
        else:
            gate.text = ""
        if gate.first_token_at is not None:
            turn.first_token_s = gate.first_token_at - t0
        deterministic = render_calls(turn.tool_calls, turn.lang)
        if any(c.refused for c in turn.tool_calls):
            # the model tried something this role may not do (asked to, or
            # talked into it by data): its prose is not trusted this turn
            turn.answer = deterministic
            turn.model_answer = gate.text or None
            turn.phrased_by = "template"
            turn.claims = {"checked": 0, "dropped": [], "fallback": "a tool call was refused"}
            if on_text is not None:
                on_text(turn.answer)
            return turn
        return self._settle(turn, gate, checker, deterministic, on_text)

    def _tools_system_prompt(self, lang: str = "en") -> str:
        p = self.principal
        if p.role is Role.USER:
            who = (f"You are talking to end user {p.user_id}. Every tool acts on their own data; you cannot see "
                   "other users' data.")
        else:
            who = (f"You are talking to a {p.role.value} staff member. Pass user_id to tools"
                   + (f"; the current user is {self.session.target_user}." if self.session.target_user else "."))
        context: dict[str, Any] = {}
        if self.session.shown:
            context["items_just_shown"] = [{"n": n, **s} for n, s in enumerate(self.session.shown, 1)]
            if self.session.request_id:
                context["request_id"] = self.session.request_id
        if self.session.turns:
            context["earlier_turns"] = [{"user": clip(t["q"], 200), "assistant": clip(t["a"], 300)}
                                        for t in self.session.recent_turns(3)]
        prompt = (
            "You are tastebud, a movie recommendation assistant. " + who + " Use the tools to look things up; "
            "explanations must come from the explain tool's evidence. Answer in at most three sentences and name only "
            "items that appear in tool results. "
            + ("Answer in Simplified Chinese (简体中文), keeping titles as written. " if lang == "zh" else "")
            + UNTRUSTED_NOTE
        )
        if context:
            prompt += "\n\nConversation context:\n" + as_data(context, 3000)
        return prompt


# ------------------------------------------------------------ helpers

def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content or "")


def _short(sentence: str, n: int = 140) -> str:
    return sentence if len(sentence) <= n else sentence[: n - 1].rsplit(" ", 1)[0] + "…"


def _compact(call: ToolCall, lang: str = "en") -> dict[str, Any]:
    """A small view of a result for the phrasing prompt: the 0.5B model reads
    short prompts better, and prompt tokens are most of the wait on a CPU. For a
    Chinese answer the reasons are given in Chinese (the model copies them)."""
    r = call.result or {}
    why, sentences = ("why_zh", "sentences_zh") if lang == "zh" else ("why", "sentences")
    if call.name == "recommend":
        return {"recommended": [{"title": i["title"], "why": _short((i.get(why) or i["why"])[0]) if i["why"] else None}
                                for i in r["items"][:3]]}
    if call.name == "explain":
        return {"title": r["title"], "rank": r["rank"],
                "reasons": [_short(s, 200) for s in (r.get(sentences) or r["sentences"])[:4]]}
    if call.name == "get_profile":
        return {"summary": clip(r.get("narrative_long_term"), 300), "recently": clip(r.get("narrative_recent"), 200),
                "top_interests": [t["tag"] for t in r["long_term_tags"][:5]], "avoids": [t["tag"] for t in r["disliked_tags"][:3]],
                "liked_titles": [i["title"] for i in r["liked_items"][:3]]}
    if call.name == "get_history":
        return {"events": [{k: e[k] for k in ("when", "type", "title", "value", "text") if e.get(k) is not None}
                           for e in r["events"][:6]]}
    if call.name == "search_items":
        return {"query": r["query"], "items": [{"title": i["title"], "categories": i["categories"][:3],
                                                "description": clip(i.get("description"), 120)} for i in r["items"][:4]]}
    if call.name == "recommendation_log":
        return {"when": r["created_at"], "items": [i["title"] for i in r["items"][:5]]}
    return r


def _snapshot(session: Session) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for k, v in session.__dict__.items()}


def _restore(session: Session, snap: dict[str, Any]) -> None:
    session.__dict__.update(snap)
