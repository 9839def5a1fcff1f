"""Request and response models: what /openapi.json promises.

Event objects are deliberately loose (any JSON object): they are validated
by the file-ingestion rules one by one, so a bad event is quarantined with its
reason instead of failing the whole request. Profiles allow extra fields: the
interest model may add some without breaking clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ErrorCode = Literal["invalid_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
                    "payload_too_large", "rate_limited", "internal", "unavailable"]


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---------------------------------------------------------------- events

class EventIn(BaseModel):
    """One event, as a JSONL line of `tastebud ingest events` (the same aliases work)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"user_id": "1", "item_id": "318", "type": "rating", "timestamp": "2026-05-01T20:15:00Z", "value": 4.5},
        {"user_id": "1", "item_id": "1258", "type": "dislike", "timestamp": 1777666555},
    ]})

    user_id: Any = Field(None, description="required")
    type: Any = Field(None, description="view, click, add_to_cart, purchase, rating, review, like, dislike, skip, search, tag")
    item_id: Any = Field(None, description="required except for search")
    timestamp: Any = Field(None, description="ISO-8601, or epoch seconds or milliseconds")
    value: Any = Field(None, description="a rating (required for rating events)")
    text: Any = Field(None, description="review, query or tag text")
    event_id: Any = Field(None, description="optional; default: a stable hash of the other fields")

    @model_validator(mode="before")
    @classmethod
    def _not_a_batch(cls, data: Any) -> Any:
        """`{"events": null}` is a malformed batch (422), not one event missing its fields."""
        if isinstance(data, dict) and "events" in data:
            raise ValueError("'events' must be a list of event objects")
        return data


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    events: list[Any] = Field(..., description="event objects; each is validated on its own")


class EventResult(BaseModel):
    index: int = Field(..., description="position in the request (0 for a single event)")
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = Field(None, description="the stored id (given or derived); null when rejected")
    reason: str | None = Field(None, description="why it was rejected (it is quarantined with this reason)")


class EventsOut(BaseModel):
    """Counts, and one result per event in request order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


# ---------------------------------------------------------------- profiles

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class WeightedTag(_Open):
    tag: str
    weight: float
    evidence_count: int | None = None
    evidence_event_ids: list[str] = []


class ItemSignal(_Open):
    item_id: str
    title: str | None = None
    type: str | None = None
    value: float | None = None


class Horizon(_Open):
    tags: list[WeightedTag] = []
    top_items: list[ItemSignal] = []
    narrative: str | None = None


class Dislikes(_Open):
    tags: list[WeightedTag] = []
    items: list[ItemSignal] = []


class Drift(_Open):
    score: float
    emerging: list[str] = []
    fading: list[str] = []


class Profile(_Open):
    """`tastebud profile show --json`."""

    user_id: str
    version: int
    narrative_source: str | None = None
    generated_at: int | None = None
    last_event_seq: int | None = None
    long_term: Horizon
    short_term: Horizon
    dislikes: Dislikes
    drift: Drift


class TagChanges(_Open):
    added: list[str] = []
    removed: list[str] = []
    reweighted: list[dict[str, Any]] = []


class VersionChanges(_Open):
    long_term: TagChanges
    short_term: TagChanges
    narrative_changed: bool = False


class ProfileVersion(BaseModel):
    version: int
    created_at: int
    narrative_source: str
    last_event_seq: int
    trigger_event_ids: list[str] = Field(..., description="the newest (at most 50) events since the previous version")
    changes: VersionChanges


class ProfileHistory(BaseModel):
    """`tastebud profile history --json`."""

    user_id: str
    versions: list[ProfileVersion]


# ---------------------------------------------------------------- recommendations

class RecommendedItem(BaseModel):
    item_id: str
    title: str
    rank: int
    score: float
    parts: dict[str, float] = Field(..., description="weighted contribution of each score part; they sum to score")


class Recommendations(BaseModel):
    """`tastebud recommend --json`; the list is logged, `request_id` names it."""

    request_id: str
    user_id: str
    created_at: int
    profile_version: int | None
    params: dict[str, Any]
    items: list[RecommendedItem]


class Why(BaseModel):
    """`tastebud why --json`: from the recommendation log, even after the profile moved on."""

    model_config = ConfigDict(extra="allow")

    recommended: Literal[True] = True
    request_id: str
    user_id: str
    item_id: str
    title: str
    rank: int
    created_at: int
    profile_version: int | None
    score: float
    parts: dict[str, float]
    evidence: dict[str, Any]
    sentences: list[str]
    source: str | None = None


# ---------------------------------------------------------------- chat

class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    message: str = Field(..., min_length=1, max_length=4000)
    session_id: str | None = Field(None, description="continue this conversation (same key role and user only)")
    user_id: str | None = Field(None, max_length=64,
                                description="support/operator: the user to talk about; a user key may only name itself")


class ToolCallOut(_Open):
    name: str


class ClaimDrop(BaseModel):
    sentence: str
    reason: str


class ClaimsOut(BaseModel):
    checked: int = Field(..., description="sentences of the model's answer checked against this turn's tool results")
    dropped: list[ClaimDrop] = Field(default_factory=list, description="sentences not shown, and why")
    fallback: str | None = Field(None, description="why the deterministic rendering was shown instead")


class ChatOut(BaseModel):
    answer: str
    tool_calls: list[ToolCallOut]
    grounded: bool
    replaced: bool = Field(..., description="the model's answer was replaced by the deterministic rendering")
    phrased_by: Literal["llm", "template"]
    lang: Literal["en", "zh"] = Field("en", description="the question's language, which the answer is in")
    reply_kind: str | None = Field(None, description="an answer without a tool: out_of_scope, own_data, ask_back or help")
    items: list[dict[str, Any]]
    claims: ClaimsOut | None = Field(None, description="the claim check of the model's answer: sentences checked, "
                                                      "dropped with the reason, and why it fell back (if it did)")
    session_id: str


# ---------------------------------------------------------------- admin

class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    users: list[str] | None = Field(None, max_length=10000, description="refresh these users")
    all_users: bool = Field(False, alias="all", description="refresh every user (when no users are named)")
    narratives: bool = Field(False, description="also queue LLM narratives (written in the background)")


class RefreshOut(_Open):
    users: int = Field(..., description="users refreshed")
    new_versions: int
    unchanged: int
    narratives_queued: int


class Status(_Open):
    store: dict[str, Any] = Field(..., description="what `tastebud status --json` shows")
    live: dict[str, Any] = Field(..., description="live updates, narrative queue and item side")
    vectors: dict[str, Any]
    chat: dict[str, Any] = Field(..., description="llm: off | starting | ready | unavailable")
    process: dict[str, Any] = Field(..., description="the answering worker: pid, rss_bytes, gc (frozen objects, collections)")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: Literal[True] = True
    checks: dict[str, Any]
