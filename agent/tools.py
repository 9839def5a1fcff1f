"""The agent's tools: plain functions over the services, each with a typed
(pydantic) argument schema, run through one gate that enforces the caller's
role. Both drivers (LangChain tool calling and the embedding router) call
tools only through `Toolbox.run`, so a refused call is the same polite result
whichever model asked for it, and every call of a turn is recorded for the
grounding check.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from tastebud import pii
from tastebud.agent.grounding import TitleIndex, clip, display_title
from tastebud.agent.roles import USERLESS_TOOLS, Principal
from tastebud.errors import InputError, NotFoundError, PermissionDenied, TastebudError
from tastebud.timefmt import human_time

if TYPE_CHECKING:
    from tastebud.agent.session import Session
    from tastebud.agent.ports import AgentServices

log = logging.getLogger(__name__)

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating", "review", "like", "dislike", "skip", "search", "tag")


# ---------------------------------------------------------------- schemas

class UserArg(BaseModel):
    user_id: str | None = Field(None, description="User id; end users may omit it (always their own).")


class GetProfileArgs(UserArg):
    """The user's living profile: narratives, weighted interest tags, dislikes and drift."""


class GetHistoryArgs(UserArg):
    """The user's recent events (newest first), optionally only some event types or one item."""

    limit: int = Field(10, ge=1, le=100, description="How many events.")
    types: list[str] | None = Field(None, description=f"Only these event types: {', '.join(EVENT_TYPES)}.")
    item_id: str | None = Field(None, description="Only events on this item.")


class RecommendArgs(UserArg):
    """Ranked recommendations for the user, each with why it scored; the list is logged."""

    k: int = Field(5, ge=1, le=100, description="How many items.")
    category: str | None = Field(None, description="Only items in this category, e.g. Comedy.")
    exclude: list[str] = Field(default_factory=list, description="Item ids or categories/tags to leave out.")
    intent: str | None = Field(None, description="Free text describing what the user is in the mood for.")
    seed: str | None = Field(None, description="An item id or exact title: recommend items like this one.")


class ExplainArgs(UserArg):
    """Why an item was recommended to the user: the logged score parts and evidence."""

    item_id: str = Field(..., description="The item id.")
    request_id: str | None = Field(None, description="A logged recommendation request id (default: the latest).")


class SearchItemsArgs(BaseModel):
    """Semantic search over the catalog (titles, categories, tags, descriptions)."""

    query: str = Field(..., min_length=1, description="What to look for.")
    k: int = Field(5, ge=1, le=20)
    category: str | None = Field(None, description="Only items in this category.")


class RecordFeedbackArgs(UserArg):
    """Store the user's feedback: a like or dislike of an item (or of a whole category)."""

    kind: Literal["like", "dislike"]
    item_id: str | None = Field(None, description="The item (id or exact title).")
    category: str | None = Field(None, description="A whole category, e.g. Horror.")


class OptOutArgs(UserArg):
    """The user's own choice: stop profiling them (their profile is deleted, recommendations
    become popularity only), or with `undo` start again. Only the user themself."""

    undo: bool = Field(False, description="Opt back in instead.")


class RecommendationLogArgs(UserArg):
    """A logged recommendation list: the given request or the user's latest."""

    request_id: str | None = None


class RefreshProfilesArgs(BaseModel):
    """Operator: recompute profiles (computed parts; narratives only when asked)."""

    user_ids: list[str] = Field(default_factory=list, description="These users (default: every user with events newer than their profile).")
    all_users: bool = Field(False, description="Every user, up to date or not.")
    narratives: bool = Field(False, description="Also rewrite LLM narratives (slow).")
    limit: int = Field(1000, ge=1, le=100_000)


class StatusArgs(BaseModel):
    """Operator: counts of users, items, events, profiles, vectors and the LLM in use."""


# tools no model may pick: the router runs them on the caller's own words (agent/router.py opt_request)
RULE_ONLY = frozenset({"opt_out"})

SCHEMAS: dict[str, type[BaseModel]] = {
    "get_profile": GetProfileArgs,
    "get_history": GetHistoryArgs,
    "recommend": RecommendArgs,
    "explain": ExplainArgs,
    "search_items": SearchItemsArgs,
    "record_feedback": RecordFeedbackArgs,
    "opt_out": OptOutArgs,
    "recommendation_log": RecommendationLogArgs,
    "refresh_profiles": RefreshProfilesArgs,
    "status": StatusArgs,
}


# ---------------------------------------------------------------- results

@dataclass
class ToolCall:
    name: str
    args: dict[str, Any]
    result: dict[str, Any] | None = None
    refused: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.refused and self.error is None

    @property
    def message(self) -> str:
        return self.error or ""

    def for_model(self) -> dict[str, Any]:
        """What a model sees: the result, or the refusal/error text."""
        if self.ok:
            return self.result  # type: ignore[return-value]
        return {"refused" if self.refused else "error": self.error}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "args": self.args, "ok": self.ok}
        if self.refused:
            out["refused"] = True
        if self.error:
            out["error"] = self.error
        return out


def _tags(tags: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [{"tag": t["tag"], "weight": round(float(t["weight"]), 3)} for t in tags[:n]]


# ---------------------------------------------------------------- the toolbox

class Toolbox:
    """The tools for one principal (and session), with the role gate in `run`."""

    def __init__(self, app: "AgentServices", principal: Principal, session: "Session | None" = None):
        self.app = app
        self.principal = principal
        self.session = session
        self.calls: list[ToolCall] = []
        self._titles: TitleIndex | None = None
        self._impl: dict[str, Callable[..., dict[str, Any]]] = {
            "get_profile": self._get_profile,
            "get_history": self._get_history,
            "recommend": self._recommend,
            "explain": self._explain,
            "search_items": self._search_items,
            "record_feedback": self._record_feedback,
            "opt_out": self._opt_out,
            "recommendation_log": self._recommendation_log,
            "refresh_profiles": self._refresh_profiles,
            "status": self._status,
        }

    # ------------------------------------------------------------ plumbing
    @property
    def titles(self) -> TitleIndex:
        if self._titles is None:
            self._titles = TitleIndex.from_store(self.app.store)
        return self._titles

    def begin_turn(self) -> None:
        self.calls = []

    def available(self) -> list[str]:
        return [n for n in SCHEMAS if self.principal.allows(n)]

    def run(self, name: str, args: dict[str, Any] | None = None) -> ToolCall:
        """Run one tool call under the role rules; never raises for a refused,
        invalid or failing call: the result says what happened, politely."""
        args = {k: _ids_as_text(k, v) for k, v in dict(args or {}).items() if v is not None}
        call = ToolCall(name, args)
        t0 = time.perf_counter()
        try:
            if name not in SCHEMAS:
                raise InputError(f"Sorry, there is no tool called {name!r}.")
            self.principal.check_tool(name)
            try:
                parsed = SCHEMAS[name].model_validate(args)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
                raise InputError(f"Sorry, I couldn't use those arguments for {name} ({where}: {err.get('msg')}).") from None
            values = parsed.model_dump()
            if name not in USERLESS_TOOLS:
                default = self.session.target_user if self.session and self.principal.is_staff else None
                values["user_id"] = self.principal.resolve_user(values.get("user_id"), default)
                call.args["user_id"] = values["user_id"]
            call.result = self._impl[name](**values)
        except PermissionDenied as exc:
            call.refused, call.error = True, str(exc)
        except TastebudError as exc:
            call.error = _polite(exc)
        except Exception as exc:  # a tool bug must not end the chat
            log.exception("tool %s failed", name)
            call.error = f"Sorry, {name} failed unexpectedly ({type(exc).__name__})."
        call.seconds = time.perf_counter() - t0
        self.calls.append(call)
        return call

    def langchain_tools(self) -> list[Any]:
        """StructuredTools for LangChain's tool-calling agent: only the role's
        tools are offered, and each goes through `run` (the gate) anyway."""
        from langchain_core.tools import StructuredTool

        from tastebud.agent.grounding import as_data

        tools = []
        for name, schema in SCHEMAS.items():
            if not self.principal.allows(name) or name in RULE_ONLY:
                continue

            def fn(_name: str = name, **kwargs: Any) -> str:
                return as_data(self.run(_name, kwargs).for_model())

            tools.append(StructuredTool.from_function(
                func=fn, name=name, description=(schema.__doc__ or name).strip(), args_schema=schema,
            ))
        return tools

    # ------------------------------------------------------------ helpers
    def resolve_item(self, ref: str) -> str:
        """An item id from an id or a title (exact after normalisation)."""
        ref = str(ref).strip()
        catalog_ids = self.titles.titles
        if ref in catalog_ids:
            return ref
        try:
            self.app.store.get_item(ref)
            return ref
        except NotFoundError:
            pass
        ids = self.titles.lookup(ref)
        if not ids:
            raise NotFoundError(f"Sorry, I couldn't find an item called {ref!r}.")
        if self.session:
            shown = {s["item_id"] for s in self.session.shown}
            for iid in ids:
                if iid in shown:
                    return iid
        return ids[0]

    def remember_latest_list(self, user_id: str) -> None:
        """Put the user's latest logged list in the session (no tool call: the
        router resolves "the second one" with it; the explain call that
        follows goes through the gate as usual)."""
        user_id = self.principal.resolve_user(user_id, self.session.target_user if self.session else None)
        rec = self.app.recommendations.log.latest_request(user_id)
        if rec is not None and self.session is not None:
            self.session.remember_items([{"item_id": it.item_id, "title": self._title(it.item_id)} for it in rec.items],
                                        user_id, rec.request_id)

    def _title(self, item_id: str) -> str:
        title = self.titles.titles.get(item_id)
        return display_title(title) if title else item_id

    def categories(self) -> list[str]:
        return sorted({c for it in self.app.store.items_by_id().values() for c in it.categories})

    # ------------------------------------------------------------ tools
    def _get_profile(self, user_id: str) -> dict[str, Any]:
        p = self.app.profiles.require_latest(user_id)
        disliked = {i["item_id"] for i in p["dislikes"]["items"]}
        return {
            "user_id": user_id,
            "version": p.get("version"),
            "narrative_long_term": p["long_term"].get("narrative"),
            "narrative_recent": p["short_term"].get("narrative"),
            "narrative_source": p.get("narrative_source"),
            "long_term_tags": _tags(p["long_term"]["tags"], 8),
            "recent_tags": _tags(p["short_term"]["tags"], 5),
            "disliked_tags": _tags(p["dislikes"]["tags"], 5),
            # negative feedback is absolute: an item the profile also lists as disliked is not a favourite
            "liked_items": [{"item_id": i["item_id"], "title": display_title(i["title"])}
                            for i in p["long_term"]["top_items"] if i["item_id"] not in disliked][:5],
            "disliked_items": [{"item_id": i["item_id"], "title": display_title(i["title"])} for i in p["dislikes"]["items"][:5]],
            "emerging": p["drift"]["emerging"][:5],
            "fading": p["drift"]["fading"][:5],
            "events": p.get("stats", {}).get("events") or p["long_term"].get("events"),
        }

    def _get_history(self, user_id: str, limit: int = 10, types: list[str] | None = None, item_id: str | None = None) -> dict[str, Any]:
        events = self.app.store.events_for_user(user_id)
        if not events and not self.app.store.user_exists(user_id):
            raise NotFoundError(f"Sorry, I don't know user {user_id}.")
        wanted = {t.lower() for t in types} if types else None
        chosen = [e for e in reversed(events)
                  if (wanted is None or e.type in wanted) and (item_id is None or e.item_id == item_id)][:limit]
        titles = self.app.store.items_by_id({e.item_id for e in chosen if e.item_id})
        return {
            "user_id": user_id,
            "total_events": len(events),
            "events": [
                {"when": human_time(e.ts, None), "type": e.type, "item_id": e.item_id,
                 "title": display_title(titles[e.item_id].title) if e.item_id in titles and titles[e.item_id].title else e.item_id,
                 "value": e.value, "text": clip(e.text, 160)}
                for e in chosen
            ],
        }

    def _recommend(self, user_id: str, k: int = 5, category: str | None = None, exclude: list[str] | None = None,
                   intent: str | None = None, seed: str | None = None) -> dict[str, Any]:
        from tastebud.retrieval.why import render_why, render_why_zh

        exclude = list(exclude or [])
        seeds = [self.resolve_item(seed)] if seed else []
        rec = self.app.recommendations.recommend(user_id, k, category, exclude, intent or None, None, source="agent",
                                                 seeds=seeds)
        items = [{
            "rank": it.rank, "item_id": it.item_id, "title": display_title(it.title), "score": round(it.score, 3),
            "categories": list(it.categories),
            "why": _display_titles(render_why({"parts": it.parts, "evidence": it.evidence})[:2], it.evidence),
            "why_zh": _display_titles(render_why_zh({"parts": it.parts, "evidence": it.evidence})[:2], it.evidence),
            "because_you_liked": [{"item_id": e["item_id"], "title": display_title(e["title"])}
                                  for e in it.evidence.get("co_occurrence") or []],
        } for it in rec.items]
        if self.session is not None:
            self.session.remember_items(items, user_id, rec.request_id)
        return {"user_id": user_id, "request_id": rec.request_id, "profile_version": rec.profile_version,
                "params": {"k": k, "category": category, "exclude": exclude, "intent": intent,
                           **({"seed": seeds[0]} if seeds else {})},
                **({"seed_item": {"item_id": seeds[0], "title": self._title(seeds[0])}} if seeds else {}),
                "items": items}

    def _explain(self, user_id: str, item_id: str, request_id: str | None = None) -> dict[str, Any]:
        from tastebud.retrieval.why import render_why_zh

        item_id = self.resolve_item(item_id)
        entry = self.app.recommendations.why(user_id, item_id, request_id)
        title = display_title(entry["title"])
        if self.session is not None:
            self.session.focus = {"item_id": item_id, "title": title, "user_id": user_id, "request_id": entry["request_id"]}
        evidence = entry["evidence"]
        liked = [{"item_id": e["item_id"], "title": display_title(e["title"]), "type": e["type"], "value": e["value"]}
                 for e in evidence.get("co_occurrence") or []]
        return {
            "user_id": user_id, "item_id": item_id, "title": title, "request_id": entry["request_id"],
            "rank": entry["rank"], "recommended_at": human_time(entry["created_at"], None), "score": round(entry["score"], 3),
            "profile_version": entry["profile_version"], "source": entry.get("source"),
            "sentences": _display_titles(entry["sentences"], evidence),
            "sentences_zh": _display_titles(render_why_zh(entry), evidence),
            "parts": {k: round(v, 3) for k, v in sorted(entry["parts"].items(), key=lambda kv: -abs(kv[1]))},
            "evidence": {"because_you_liked": liked,
                         "matching_tags": [{"tag": t["tag"], "weight": t["weight"]} for t in evidence.get("tag_match") or []],
                         "popularity": (evidence.get("popularity") or {}).get("positive_interactions"),
                         "same_start": [{"title": display_title(e["title"]),
                                         **{k: e[k] for k in ("started", "went_on") if k in e}}
                                        for e in (evidence.get("same_start") or {}).get("items") or []]},
        }

    def _search_items(self, query: str, k: int = 5, category: str | None = None) -> dict[str, Any]:
        query = pii.mask(query)  # it is encoded, and shown to the model
        hits = self.app.vectors.items.query(query, k * 4 if category else k)
        catalog = self.app.store.items_by_id([h.id for h in hits])
        out = []
        for h in hits:
            it = catalog.get(h.id)
            if it is None:
                continue
            if category and not any(c.lower() == category.strip().lower() for c in it.categories):
                continue
            out.append({"item_id": it.item_id, "title": display_title(it.title or it.item_id),
                        "categories": list(it.categories), "similarity": round(h.score, 3),
                        "description": clip(it.description, 200)})  # untrusted text: data only
            if len(out) == k:
                break
        return {"query": query, "category": category, "items": out}

    def _record_feedback(self, user_id: str, kind: str, item_id: str | None = None, category: str | None = None) -> dict[str, Any]:
        """Stored as a real event (an item-less like/dislike names a category: a
        standing preference), and the profile is refreshed at once, without narratives."""
        from tastebud.profiles.events import Event

        if not item_id and not category:
            raise InputError("Which item (or category) is the feedback about?")
        about: dict[str, Any]
        if item_id is None:
            cat = self._category(category)
            about, event_item, text = {"category": cat}, None, cat
        else:
            event_item = self.resolve_item(item_id)
            about, text = {"item_id": event_item, "title": self._title(event_item)}, None
        event = Event(f"agent-{uuid.uuid4().hex[:24]}", user_id, event_item, kind, int(time.time() * 1000), None, text)
        self.app.store.write_batch([event])
        report = self.app.refresher(narratives=False).refresh([user_id], narratives=False)
        if self.session is not None and event_item is not None:
            self.session.focus = {"item_id": event_item, "title": about["title"], "user_id": user_id, "request_id": None}
        return {"user_id": user_id, "kind": kind, **about, "event_id": event.event_id,
                "stored": "event", "profile_version": report.versions.get(user_id)}

    def _opt_out(self, user_id: str, undo: bool = False) -> dict[str, Any]:
        """Opt the (own, pinned) user out of profiling, or back in."""
        privacy = self.app.privacy
        if undo:
            out = privacy.opt_in(user_id)
            return {"user_id": user_id, "opted_out": False, "was_opted_out": out["was_opted_out"]}
        out = privacy.opt_out(user_id, requested_by="chat")
        removed = out["removed"]
        return {"user_id": user_id, "opted_out": True, "already": out["already"],
                "profile_versions_removed": removed.get("profile_versions", 0),
                "profile_vectors_removed": removed.get("profile_vectors", 0)}

    def _category(self, text: str) -> str:
        wanted = text.strip().lower()
        for c in self.categories():
            if c.lower() == wanted or c.lower().rstrip("s") == wanted.rstrip("s"):
                return c
        raise NotFoundError(f"Sorry, there is no category {text!r}.")

    def _recommendation_log(self, user_id: str, request_id: str | None = None) -> dict[str, Any]:
        log_ = self.app.recommendations.log
        if request_id:
            rec = log_.request(request_id)
            if rec.user_id != user_id:
                raise NotFoundError(f"no recommendation request {request_id!r} for user {user_id!r}")
        else:
            rec = log_.latest_request(user_id)
            if rec is None:
                raise NotFoundError(f"Nothing has been recommended to user {user_id} yet.")
        items = [{"rank": it.rank, "item_id": it.item_id, "title": self._title(it.item_id), "score": round(it.score, 3)}
                 for it in rec.items]
        if self.session is not None:
            self.session.remember_items(items, user_id, rec.request_id)
        return {"user_id": user_id, "request_id": rec.request_id, "created_at": human_time(rec.created_at, None),
                "source": rec.source, "profile_version": rec.profile_version, "params": rec.params, "items": items}

    def _refresh_profiles(self, user_ids: list[str] | None = None, all_users: bool = False, narratives: bool = False,
                          limit: int = 1000) -> dict[str, Any]:
        refresher = self.app.refresher(narratives=narratives)
        chosen = refresher.select_users(user_ids or None, all_users)[:limit]
        if not chosen:
            return {"users": 0, "message": "all profiles are up to date"}
        report = refresher.refresh(chosen, narratives=narratives)
        out = report.as_dict()
        out["user_ids"] = chosen[:20]
        return out

    def _status(self) -> dict[str, Any]:
        data = self.app.store.status()
        try:
            data["vectors"] = {"items": self.app.vectors.items.count(), "profiles": self.app.vectors.profiles.count()}
        except Exception as exc:  # a down Chroma server is status, not a crash
            data["vectors"] = {"error": str(exc)}
        if self.app.started("llm"):
            data["llm"] = self.app.llm.describe()
        return data


def _polite(exc: TastebudError) -> str:
    text = str(exc).strip() or "that failed"
    if text.lower().startswith("sorry") or text.endswith("?") or "?" in text.split("(")[0]:
        return text
    text = text[0].lower() + text[1:]
    return f"Sorry, {text}" + ("" if text.endswith((".", "!", ")")) else ".")


def _ids_as_text(key: str, value: Any) -> Any:
    """Models often send ids as numbers; ids are strings."""
    if key in ("user_id", "item_id", "request_id") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    if key in ("user_ids", "exclude", "types") and isinstance(value, (list, tuple)):
        return [str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    if key in ("user_ids", "exclude", "types") and isinstance(value, str):
        return [value]
    return value


def _display_titles(sentences: list[str], evidence: dict[str, Any]) -> list[str]:
    """The service writes catalog titles as stored ("Matrix, The (1999)"); say them as people do."""
    raws = [e.get("title") or "" for e in evidence.get("co_occurrence") or []]
    raws += list((evidence.get("seed") or {}).get("titles") or [])
    raws += [e.get("title") or "" for e in (evidence.get("same_start") or {}).get("items") or []]
    out = []
    for sentence in sentences:
        for raw in raws:
            if raw and raw in sentence:
                sentence = sentence.replace(raw, display_title(raw))
        out.append(sentence)
    return out
