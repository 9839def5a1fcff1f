"""POST /v1/chat: one agent turn for the key's principal.

The principal comes from the key, never from the request: a user key is the
end user (every tool pinned to them), support and operator keys are staff who
name the user they talk about. LLM calls made for chat use their own client
(`api_chat_timeout_s`, no retries); a call that runs out raises ModelError
inside the agent, which then answers with its deterministic rendering of the
tool results, as for any model failure. When the tool-calling driver got
nothing from the model (so no tool ran), the turn is answered again without
the LLM (`phrasing=False`). Until the LLM is up (the embedded server takes a
while to start), or with `api_chat_phrasing` off, answers are deterministic.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any

from tastebud.agent.roles import Principal, Role
from tastebud.api.keys import ApiKey
from tastebud.errors import PermissionDenied

if TYPE_CHECKING:
    from tastebud.app import App

log = logging.getLogger("tastebud.api")


class ChatService:
    def __init__(self, app: "App"):
        self.app = app
        self.settings = app.settings
        self._chat_llm: Any = None  # the LLM client with the chat timeout, once up
        self._warming: threading.Thread | None = None
        self._failed: str | None = None

    def warm_up(self) -> None:
        """Start the LLM in the background (never blocks startup or a request)."""
        if not self.settings.api_chat_phrasing or self._warming is not None:
            return
        self._warming = threading.Thread(target=self._start_llm, name="chat-llm-warmup", daemon=True)
        self._warming.start()

    def _start_llm(self) -> None:
        from tastebud.llm import connect

        try:
            llm = self.app.llm
            if llm.endpoint is not None:  # the same server; a client with the chat timeout, no retries, no server to stop
                llm = connect(dataclasses.replace(llm.endpoint, server=None, max_retries=0), llm.backend,
                              timeout=self.settings.api_chat_timeout_s)
            self._chat_llm = llm
        except Exception as exc:  # noqa: BLE001 - chat still answers, deterministically
            self._failed = f"{type(exc).__name__}: {exc}"
            log.warning("chat LLM unavailable, answers stay deterministic: %s", exc)

    def describe(self) -> dict[str, Any]:
        """For /v1/status: whether chat answers are phrased by the LLM yet."""
        if not self.settings.api_chat_phrasing:
            state = "off"
        elif self._chat_llm is not None:
            state = "ready"
        else:
            state = "unavailable" if self._failed else "starting"
        return {"llm": state, "timeout_s": self.settings.api_chat_timeout_s, **({"error": self._failed} if self._failed else {})}

    def principal(self, key: ApiKey, user_id: str | None) -> tuple[Principal, str | None]:
        """(who is talking, the user staff are talking about)."""
        if key.role == Role.USER.value:
            if user_id is not None and user_id != key.user_id:
                raise PermissionDenied("a user key reaches only its own user")
            return Principal(Role.USER, key.user_id), None
        return Principal(Role(key.role), None), user_id

    def ask(self, key: ApiKey, message: str, session_id: str | None, user_id: str | None) -> tuple[dict[str, Any], list[str]]:
        """(the turn as JSON, users whose feedback the turn stored as events)."""
        from tastebud.agent.agent import Agent
        from tastebud.agent.session import Session

        principal, target = self.principal(key, user_id)

        def agent_for(llm: Any) -> Agent:
            owner = principal.user_id if principal.role is Role.USER else f"key:{key.key_id}"
            session = Session.resume_or_new(self.settings.home, session_id, principal.role.value, owner)
            if target:
                session.target_user = target
            return Agent(self.app, principal, session, llm=llm, phrasing=llm is not None)

        agent = agent_for(self._chat_llm if self.settings.api_chat_phrasing else None)
        turn = agent.ask(message)
        if agent.mode == "tools" and not turn.tool_calls and turn.phrased_by == "template":
            # The model gave nothing usable (a timeout, an error) and ran no tool, so
            # answering again without it repeats no side effect: the deterministic turn.
            agent = agent_for(None)
            turn = agent.ask(message)
        agent.save()
        out = turn.as_dict()
        out.pop("timing", None)
        out.pop("session", None)
        out.pop("ungrounded", None)
        out["session_id"] = agent.session.id
        feedback = sorted({c.result["user_id"] for c in turn.tool_calls
                           if c.ok and c.name == "record_feedback" and c.result.get("stored") == "event"})
        return out, feedback
