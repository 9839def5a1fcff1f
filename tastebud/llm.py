"""One way to talk to an LLM: LangChain's ``ChatOpenAI`` against an OpenAI-compatible server.

Backends differ only in where the server comes from and in two small adapters:

=========  ===========================================  ==========================================
backend    server                                       structured output (``LLM.structured``)
=========  ===========================================  ==========================================
openai     ``settings.llm_base_url`` (vLLM, any          ``{"type": "json_schema", "json_schema":
           OpenAI-compatible endpoint)                  {"name", "schema"}}`` (vLLM guided decoding)
embedded   llama-cpp-python server on loopback           ``{"type": "json_object", "schema": ...}``
           (``tastebud.embedded``), started on demand   (llama.cpp grammar; json_schema -> HTTP 500)
fake       a LangChain fake chat model from a test      nothing bound; output parsed the same way
=========  ===========================================  ==========================================

Usage::

    llm = get_llm(settings)                       # picks openai or embedded from settings
    llm.chat_model.invoke("hi")                   # plain LangChain BaseChatModel
    llm.structured(MySchema).invoke(messages)     # -> validated MySchema (or dict for a dict schema)

Errors from the endpoint (unreachable, timeout, HTTP error) and unparseable or
invalid structured output become ``ModelError`` so callers can fall back.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from tastebud.errors import ModelError, TastebudError

if TYPE_CHECKING:  # heavy imports stay out of module import time
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable

    from tastebud.embedded import EmbeddedServer
    from tastebud.settings import Settings


# ---------------------------------------------------------------------------
# Endpoints and backends
# ---------------------------------------------------------------------------


@dataclass
class Endpoint:
    """Where and how to reach an OpenAI-compatible chat server."""

    base_url: str
    model: str
    api_key: str
    max_retries: int
    concurrency: int
    server: "EmbeddedServer | None" = None  # owned by this process, stopped by LLM.close()


class Backend(Protocol):
    name: str

    def endpoint(self, settings: "Settings") -> Endpoint:
        """Find or start the server."""

    def response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        """What to bind as ``response_format`` to constrain output to ``schema``."""

    def chat_model_class(self) -> type:
        """The ChatOpenAI (sub)class that speaks this server's dialect."""


class OpenAIBackend:
    """vLLM or any OpenAI-compatible endpoint given by ``settings.llm_base_url``."""

    name = "openai"

    def endpoint(self, settings: "Settings") -> Endpoint:
        if not settings.llm_base_url:
            raise ModelError("the openai backend needs an endpoint", hint="set TASTEBUD_LLM_BASE_URL")
        return Endpoint(
            base_url=settings.llm_base_url.rstrip("/"),
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            max_retries=2,
            # vLLM batches concurrent requests: keep many in flight
            concurrency=max(1, settings.llm_concurrency),
        )

    def response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}

    def chat_model_class(self) -> type:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI


class EmbeddedBackend:
    """The bundled GGUF behind llama-cpp-python's server on a loopback port."""

    name = "embedded"

    def endpoint(self, settings: "Settings") -> Endpoint:
        from tastebud.embedded import ensure_model, find_running, server_for

        model = ensure_model(settings.models_dir)
        # llama-cpp's server runs one request at a time: more in flight only
        # makes queued requests burn their timeout while they wait.
        running = find_running(settings, model)
        if running is not None:
            return Endpoint(running.base_url, running.alias, running.api_key, max_retries=0, concurrency=1)
        server = server_for(settings, model).start()
        return Endpoint(server.base_url, server.alias, server.api_key, max_retries=0, concurrency=1, server=server)

    def response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        return {"type": "json_object", "schema": schema}

    def chat_model_class(self) -> type:
        return _llama_cpp_chat_openai()


class FakeBackend:
    """For tests that inject a LangChain fake chat model."""

    name = "fake"

    def endpoint(self, settings: "Settings") -> Endpoint:  # pragma: no cover - never connects
        raise ModelError("the fake backend has no endpoint; use LLM.from_chat_model")

    def response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def chat_model_class(self) -> type:  # pragma: no cover
        raise ModelError("the fake backend has no chat model class")


_BACKENDS: dict[str, Backend] = {b.name: b for b in (OpenAIBackend(), EmbeddedBackend(), FakeBackend())}


def get_backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ModelError(f"unknown LLM backend {name!r}; known: {', '.join(_BACKENDS)}") from None


def backend_name(settings: "Settings") -> str:
    """``openai`` when an endpoint URL is configured, else ``embedded``."""
    return "openai" if settings.llm_base_url else "embedded"


_LLAMA_CPP_CLASS: type | None = None
# what a message chosen under tool_choice="auto" can hold on llama-cpp's server (see below)
_TOOL_NAME_AS_TEXT = re.compile(r"^\s*functions\.([A-Za-z0-9_-]+):?\s*$")


def _llama_cpp_chat_openai() -> type:
    """ChatOpenAI in the dialect of llama-cpp-python's server (0.3.x, chat format
    ``chatml-function-calling``):

    * it sends ``max_tokens``: langchain-openai renames it to
      ``max_completion_tokens``, which the server silently ignores (and then
      generates until the context is full);
    * tool calling (LangChain's ``bind_tools``, the agent's ``tools`` driver),
      measured in tests/integration/test_agent_tool_calling.py:

      - no ``tool_choice`` means "none" there (the tools are not even put in the
        prompt), not OpenAI's "auto": with tools bound and no choice this sends
        "auto", or "none" when the last message is a tool result (see next);
      - a *message* chosen under "auto" is decoded with the server's follow-up
        grammar (``functions.<name>:`` or end of turn), so the model cannot
        write prose there; text ``functions.<name>:`` naming a bound tool is
        the model's tool choice and is completed with the named
        ``tool_choice`` (the server's JSON-schema grammar for its arguments).
        After tool results, "none" lets the model answer in prose: one round
        of tool calls per turn;
      - "auto" cannot stream (HTTP 500 once the model picks a function): no
        streaming while tools are bound; "required" is an HTTP 500 as well;
      - the template has no branch for "tool" messages (results never reach the
        model), and an assistant's calls written as ``functions.<name>:`` lines
        make the model answer in that format: the conversation goes the way
        Qwen2.5's own chat template renders it (``_llama_cpp_messages``);
      - an assistant message of calls only needs content "" (null is HTTP 500).

      Through this dialect the 0.5B model picks the right tool for 7 of 20
      plain questions (bench/agent_tools_driver.py); the router driver exists
      for it.
    """
    global _LLAMA_CPP_CLASS
    if _LLAMA_CPP_CLASS is None:
        from typing import Literal

        from langchain_openai import ChatOpenAI

        class LlamaCppChatOpenAI(ChatOpenAI):
            disable_streaming: bool | Literal["tool_calling"] = "tool_calling"

            def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
                payload = super()._get_request_payload(input_, stop=stop, **kwargs)
                if "max_completion_tokens" in payload:
                    payload["max_tokens"] = payload.pop("max_completion_tokens")
                messages = payload.get("messages") or []
                if payload.get("tools") and payload.get("tool_choice") is None:
                    answered = bool(messages) and messages[-1].get("role") == "tool"
                    payload["tool_choice"] = "none" if answered else "auto"
                payload["messages"] = _llama_cpp_messages(messages)
                return payload

            def _named_call(self, result: Any, kwargs: dict[str, Any]) -> dict[str, Any] | None:
                """kwargs that complete a tool choice the model wrote as text."""
                message = result.generations[0].message
                if getattr(message, "tool_calls", None) or getattr(message, "invalid_tool_calls", None):
                    return None
                m = _TOOL_NAME_AS_TEXT.match(_content_text(message))
                names = {(t.get("function") or {}).get("name") for t in kwargs.get("tools") or []}
                if m is None or m.group(1) not in names or kwargs.get("tool_choice") not in (None, "auto"):
                    return None
                return {**kwargs, "tool_choice": {"type": "function", "function": {"name": m.group(1)}}}

            def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
                result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
                named = self._named_call(result, kwargs)
                return result if named is None else super()._generate(messages, stop=stop, run_manager=run_manager, **named)

            async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
                result = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
                named = self._named_call(result, kwargs)
                if named is None:
                    return result
                return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **named)

        _LLAMA_CPP_CLASS = LlamaCppChatOpenAI
    return _LLAMA_CPP_CLASS


def _llama_cpp_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A conversation with tool calls as Qwen2.5's own chat template renders it
    (chatml-function-calling has no branch for tool results, and its
    ``functions.<name>:`` lines make the model answer in that format): an
    assistant's calls as ``<tool_call>`` JSON lines, the results (consecutive
    ones together) as one user message of ``<tool_response>`` blocks."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            block = f"<tool_response>\n{_content_text(m.get('content') or '')}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        elif role == "assistant" and m.get("tool_calls"):
            calls = [
                "<tool_call>\n" + json.dumps({"name": c["function"]["name"], "arguments": _json_or_text(c["function"]["arguments"])},
                                              ensure_ascii=False) + "\n</tool_call>"
                for c in m["tool_calls"]
            ]
            out.append({"role": "assistant", "content": "\n".join([_content_text(m.get("content") or ""), *calls]).strip()})
        else:
            out.append(m)
    for m in out:
        m.pop("_tool_results", None)
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------
# The LLM handle
# ---------------------------------------------------------------------------


class LLM:
    """A chat model plus the per-backend adapters the app needs."""

    def __init__(
        self,
        chat_model: "BaseChatModel",
        backend: str,
        *,
        concurrency: int = 1,
        endpoint: Endpoint | None = None,
    ):
        self.chat_model = chat_model
        self.backend = backend
        self.concurrency = max(1, concurrency)
        self.endpoint = endpoint
        self._adapter = get_backend(backend)

    @classmethod
    def from_chat_model(cls, model: "BaseChatModel", backend: str = "fake", *, concurrency: int = 1) -> "LLM":
        """Wrap any LangChain chat model, e.g. ``GenericFakeChatModel`` in tests.
        ``backend`` picks the structured-output adapter ("fake" binds none)."""
        return cls(model, backend, concurrency=concurrency)

    @property
    def base_url(self) -> str | None:
        return self.endpoint.base_url if self.endpoint else None

    @property
    def model_name(self) -> str | None:
        return self.endpoint.model if self.endpoint else getattr(self.chat_model, "model_name", None)

    def describe(self) -> dict[str, Any]:
        """For `tastebud status`: what we talk to (never the API key)."""
        return {
            "backend": self.backend,
            "base_url": self.base_url,
            "model": self.model_name,
            "concurrency": self.concurrency,
            "embedded_server_pid": self.endpoint.server.pid if self.endpoint and self.endpoint.server else None,
        }

    # structured output ------------------------------------------------------
    def response_format(self, schema: Any, *, name: str | None = None) -> dict[str, Any] | None:
        name, json_schema = schema_of(schema, name)
        return self._adapter.response_format(name, json_schema)

    def structured(self, schema: Any, *, name: str | None = None) -> "Runnable":
        """A Runnable: chat input -> parsed, validated output.

        ``schema`` is a pydantic model class (returns an instance) or a JSON
        schema dict (returns a dict). Raises ``ModelError`` on an endpoint
        error, unparseable JSON or output that does not match the schema.
        """
        from langchain_core.runnables import RunnableLambda

        rf = self.response_format(schema, name=name)
        bound = self.chat_model.bind(response_format=rf) if rf is not None else self.chat_model

        def call(value: Any, config: Any = None) -> Any:
            with model_errors():
                message = bound.invoke(value, config)
            return parse_structured(message, schema)

        async def acall(value: Any, config: Any = None) -> Any:
            with model_errors():
                message = await bound.ainvoke(value, config)
            return parse_structured(message, schema)

        return RunnableLambda(call, afunc=acall, name=f"structured[{self.backend}]")

    def close(self) -> None:
        """Stop the embedded server this handle started (no-op otherwise)."""
        if self.endpoint is not None and self.endpoint.server is not None:
            self.endpoint.server.stop()


def get_llm(
    settings: "Settings",
    *,
    backend: str | None = None,
    temperature: float | None = None,
    **chat_kwargs: Any,
) -> LLM:
    """Build the LLM for these settings. ``backend`` overrides the choice made
    from ``settings.llm_base_url``; extra keyword arguments go to ChatOpenAI."""
    name = backend or backend_name(settings)
    endpoint = get_backend(name).endpoint(settings)
    return connect(endpoint, name, timeout=settings.llm_timeout, temperature=temperature, **chat_kwargs)


def connect(
    endpoint: Endpoint,
    backend: str,
    *,
    timeout: float = 120.0,
    temperature: float | None = None,
    **chat_kwargs: Any,
) -> LLM:
    """An LLM over a known endpoint (e.g. a server a test fixture started)."""
    cls = get_backend(backend).chat_model_class()
    kwargs: dict[str, Any] = dict(
        base_url=endpoint.base_url,
        model=endpoint.model,
        api_key=endpoint.api_key,
        timeout=timeout,
        max_retries=endpoint.max_retries,
    )
    if temperature is not None:
        kwargs["temperature"] = temperature
    kwargs.update(chat_kwargs)
    try:
        chat_model = cls(**kwargs)
    except Exception as exc:
        if endpoint.server is not None:
            endpoint.server.stop()
        raise ModelError(f"cannot build the chat model for {endpoint.base_url}: {exc}") from exc
    return LLM(chat_model, backend, concurrency=endpoint.concurrency, endpoint=endpoint)


# ---------------------------------------------------------------------------
# Schemas, parsing, errors
# ---------------------------------------------------------------------------


def schema_of(schema: Any, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """(name, JSON schema) for a pydantic model class or a JSON-schema dict."""
    if isinstance(schema, dict):
        json_schema = schema
        default = str(schema.get("title") or "output")
    elif isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        json_schema = schema.model_json_schema()
        default = schema.__name__
    else:
        raise TypeError(f"schema must be a JSON-schema dict or a pydantic model class, not {schema!r}")
    # OpenAI-style names: letters, digits, _ and -, at most 64
    return re.sub(r"[^A-Za-z0-9_-]", "_", name or default)[:64], json_schema


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_json(text: str) -> Any:
    """The JSON value in a model's answer; tolerates a code fence or prose around one object."""
    candidate = text.strip()
    m = _FENCE.match(candidate)
    if m:
        candidate = m.group(1)
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[start:])
            return value
        except ValueError:
            pass
    raise ModelError(f"the model did not answer with JSON: {_snippet(text)}")


def parse_structured(message: Any, schema: Any) -> Any:
    """Parse an AIMessage (or str) as JSON and validate it against ``schema``."""
    text = message if isinstance(message, str) else _content_text(message)
    data = parse_json(text)
    if isinstance(schema, dict):
        _validate_json_schema(data, schema, text)
        return data
    from pydantic import ValidationError

    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ModelError(f"the model's JSON does not match {schema.__name__}: {_first_error(exc)}; got {_snippet(text)}") from exc


def _validate_json_schema(data: Any, schema: dict[str, Any], text: str) -> None:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with chromadb
        if schema.get("type") == "object" and not isinstance(data, dict):
            raise ModelError(f"the model's JSON is not an object: {_snippet(text)}") from None
        return
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ModelError(f"the model's JSON does not match the schema at {where}: {exc.message}; got {_snippet(text)}") from exc


def _content_text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _first_error(exc: Any) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err.get('loc', ())) or '(root)'}: {err.get('msg')}"


def _snippet(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[:n] + "…")


def to_model_error(exc: BaseException) -> TastebudError:
    """Map an OpenAI-client/httpx exception to ``ModelError`` (tastebud errors pass through)."""
    if isinstance(exc, TastebudError):
        return exc
    try:
        import openai
    except ImportError:  # pragma: no cover
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(exc, openai.APITimeoutError):
            return ModelError("the LLM did not answer in time", hint="raise TASTEBUD_LLM_TIMEOUT or use a faster endpoint")
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                f"cannot reach the LLM endpoint: {exc}",
                hint="is the server (vLLM or the embedded one) running? check TASTEBUD_LLM_BASE_URL",
            )
        if isinstance(exc, openai.APIStatusError):
            return ModelError(f"the LLM endpoint answered HTTP {exc.status_code}: {_snippet(exc.message)}")
        if isinstance(exc, openai.OpenAIError):
            return ModelError(f"LLM call failed: {exc}")
    return ModelError(f"LLM call failed: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """Re-raise endpoint failures as ``ModelError`` (for agents calling chat_model directly)."""
    try:
        yield
    except TastebudError:
        raise
    except Exception as exc:
        if _is_endpoint_error(exc):
            raise to_model_error(exc) from exc
        raise


def _is_endpoint_error(exc: BaseException) -> bool:
    try:
        import httpx
        import openai
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (openai.OpenAIError, httpx.HTTPError))
