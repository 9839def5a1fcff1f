"""The endpoints. Route functions are plain `def`: FastAPI runs them in its
threadpool, and they share the process's services (SQLAlchemy's engine and the
recommendation service are thread-safe). Reads of a user first call
`live.ensure_fresh` so an event posted a moment ago is already reflected."""

from __future__ import annotations

from typing import Annotated, Any, Union

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from tastebud.api import schemas
from tastebud.api.auth import Action, allow, services
from tastebud.api.errors import PayloadTooLarge, error_body
from tastebud.api.keys import ApiKey
from tastebud.api.services import Services
from tastebud.profiles.events import ValueRules


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all `ErrorBody`)."""
    described = {401: "missing, invalid or revoked API key", 403: "the key's role may not do this",
                 404: "no such user, profile, item or request", 413: "body or batch too large",
                 422: "invalid request", 429: "rate limited (see Retry-After)",
                 500: "internal error", 503: "event store, vector store or model unavailable"}
    return {s: {"model": schemas.ErrorBody, "description": described[s]} for s in (*statuses, 500, 503)}


AUTH_ERRORS = (401, 403, 422, 429)
Svc = Annotated[Services, Depends(services)]
UserId = Annotated[str, Path(min_length=1, max_length=64, description="user id")]
ItemId = Annotated[str, Path(min_length=1, max_length=64, description="item id")]
EventsBody = Annotated[Union[schemas.EventBatchIn, schemas.EventIn], Field(union_mode="left_to_right")]

router = APIRouter(prefix="/v1")
health = APIRouter(tags=["health"])


# ---------------------------------------------------------------- events

@router.post("/events", response_model=schemas.EventsOut, response_model_exclude_unset=True, tags=["events"],
             responses=_errors(*AUTH_ERRORS, 413),
             summary="Append events (one object, or {\"events\": [...]})")
def post_events(body: Annotated[EventsBody, Body()], svc: Svc,
                key: Annotated[ApiKey, Depends(allow(Action.WRITE_EVENTS))]) -> dict[str, Any]:
    """Same validation as `tastebud ingest events`. Always 200 with one result per
    event, in order: `accepted`, `duplicate` (already stored: posting again is
    safe) or `rejected` (quarantined with the reason; the others still count).
    Accepted events are committed before the answer, and the user's profile and
    recommendations follow within about a second (narratives later)."""
    from tastebud.api.ingest import ingest

    objects = body.events if isinstance(body, schemas.EventBatchIn) else [body.model_dump(exclude_unset=True)]
    limit = svc.app.settings.api_max_batch_events
    if len(objects) > limit:
        raise PayloadTooLarge(f"{len(objects)} events in one request; at most {limit}")
    outcome = ingest(svc.app.store, key, objects, ValueRules.from_settings(svc.app.settings))
    if outcome.accepted_users:
        svc.live.events_accepted(outcome.accepted_users)
    return outcome.as_dict()


# ---------------------------------------------------------------- users

READ = Annotated[ApiKey, Depends(allow(Action.READ_USER))]


@router.get("/users/{user_id}/profile", response_model=schemas.Profile, tags=["users"],
            responses=_errors(*AUTH_ERRORS, 404))
def get_profile(user_id: UserId, svc: Svc, key: READ) -> dict[str, Any]:
    """The latest profile: narratives, weighted tags with evidence, dislikes, drift."""
    svc.live.ensure_fresh(user_id)
    return svc.app.profiles.require_latest(user_id)


@router.get("/users/{user_id}/profile/history", response_model=schemas.ProfileHistory, tags=["users"],
            responses=_errors(*AUTH_ERRORS, 404))
def get_profile_history(user_id: UserId, svc: Svc, key: READ) -> dict[str, Any]:
    """Every profile version with what changed and the events that triggered it."""
    svc.live.ensure_fresh(user_id)
    return {"user_id": user_id, "versions": svc.app.profiles.history(user_id)}


@router.get("/users/{user_id}/recommendations", response_model=schemas.Recommendations, tags=["users"],
            responses=_errors(*AUTH_ERRORS, 404))
def get_recommendations(
    user_id: UserId, svc: Svc, key: READ,
    k: Annotated[int, Query(ge=1, le=100, description="how many items")] = 10,
    category: Annotated[str | None, Query(max_length=200, description="only items in this category")] = None,
    exclude: Annotated[list[str], Query(max_length=100, description="item ids or categories/tags to leave out")] = [],  # noqa: B006
) -> dict[str, Any]:
    """Ranked, filtered recommendations with their score parts. The list is logged
    (source `api`), so `why` can explain it later; this holds for support keys
    too, which may call it to see what the user sees."""
    svc.live.ensure_fresh(user_id)
    return svc.app.recommendations.recommend(user_id, k, category, tuple(exclude), source="api").as_dict()


@router.get("/users/{user_id}/recommendations/{item_id}/why", response_model=schemas.Why, tags=["users"],
            responses=_errors(*AUTH_ERRORS, 404))
def get_why(user_id: UserId, item_id: ItemId, svc: Svc, key: READ,
            request_id: Annotated[str | None, Query(max_length=64, description="a logged request (default: the latest with this item)")] = None,
            ) -> dict[str, Any]:
    """Why the item was recommended, rendered from the logged score parts and evidence."""
    svc.live.ensure_fresh(user_id)
    return {**svc.app.recommendations.why(user_id, item_id, request_id), "recommended": True}


RIGHTS = Annotated[ApiKey, Depends(allow(Action.DATA_RIGHTS))]


@router.get("/users/{user_id}/export", tags=["privacy"], responses=_errors(*AUTH_ERRORS, 404))
def get_export(user_id: UserId, svc: Svc, key: RIGHTS) -> dict[str, Any]:
    """Everything held about the user as one document (events, every profile version,
    recommendations served with their reasons, chat sessions, keys, quarantined rows);
    its JSON Schema ships as `tastebud/retrieval/export.schema.json`. Operator key,
    or the user's own."""
    return svc.app.privacy.export(user_id)


@router.delete("/users/{user_id}", tags=["privacy"], responses=_errors(*AUTH_ERRORS))
def delete_user(user_id: UserId, svc: Svc, key: RIGHTS) -> dict[str, Any]:
    """Forget the user in every store (events, profiles, vectors, log, queue,
    quarantine, chat sessions, API keys, log lines); one audit row without the id
    stays. Idempotent: 200 with zero counts when nothing was left. Operator key, or
    the user's own (which stops working with this request)."""
    return svc.app.privacy.forget(user_id, requested_by=f"api:{key.key_id}")


@router.post("/users/{user_id}/optout", tags=["privacy"], responses=_errors(*AUTH_ERRORS))
def post_optout(user_id: UserId, svc: Svc, key: RIGHTS) -> dict[str, Any]:
    """Stop profiling the user: profile versions, narratives, tags and profile vectors
    are removed now and no refresh makes new ones; recommendations become popularity
    only (minus what the user has seen). Events and keys are kept. Idempotent.
    Operator key, or the user's own."""
    out = svc.app.privacy.opt_out(user_id, requested_by=f"api:{key.key_id}")
    svc.live.drop_user(user_id)
    return out


@router.delete("/users/{user_id}/optout", tags=["privacy"], responses=_errors(*AUTH_ERRORS))
def delete_optout(user_id: UserId, svc: Svc, key: RIGHTS) -> dict[str, Any]:
    """Opt the user back in: the profile is rebuilt from the kept events on the next
    refresh (on this server, by the next read). Operator key, or the user's own."""
    return svc.app.privacy.opt_in(user_id)


# ---------------------------------------------------------------- chat

@router.post("/chat", response_model=schemas.ChatOut, tags=["chat"], responses=_errors(*AUTH_ERRORS, 404))
def post_chat(body: schemas.ChatIn, svc: Svc, key: Annotated[ApiKey, Depends(allow(Action.CHAT))]) -> dict[str, Any]:
    """One turn of the chat agent. A user key talks about itself; support and
    operator keys name the user in `user_id` (or in the message). Pass the
    returned `session_id` to continue the conversation."""
    principal, target = svc.chat.principal(key, body.user_id)
    if principal.user_id or target:
        svc.live.ensure_fresh(principal.user_id or target)
    out, feedback_users = svc.chat.ask(key, body.message, body.session_id, body.user_id)
    if feedback_users:
        svc.live.events_accepted(feedback_users)
    return out


# ---------------------------------------------------------------- admin

ADMIN = Annotated[ApiKey, Depends(allow(Action.ADMIN))]


@router.post("/admin/refresh", response_model=schemas.RefreshOut, tags=["admin"], responses=_errors(*AUTH_ERRORS, 404))
def post_refresh(body: schemas.RefreshIn, svc: Svc, key: ADMIN) -> dict[str, Any]:
    """Recompute profiles now (the computed parts): `{"users": [...]}` those users
    (404 if one has no events), else `{"all": true}` every user, else (`{}`) the
    users with events newer than their profile. With `"narratives": true` their
    narratives are queued for the background writer; the answer does not wait
    for the LLM."""
    return svc.live.refresh(body.users or None, body.all_users, body.narratives)


@router.get("/status", response_model=schemas.Status, tags=["admin"], responses=_errors(*AUTH_ERRORS))
def get_status(svc: Svc, key: ADMIN) -> dict[str, Any]:
    """Event store counts, vectors, live-update and narrative-queue state."""
    return svc.status()


# ---------------------------------------------------------------- health (no key)

@health.get("/healthz", response_model=schemas.Health)
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@health.get("/readyz", response_model=schemas.Ready, responses={503: {"model": schemas.ErrorBody, "description": "not ready"}})
def readyz(svc: Svc) -> Any:
    """The event store answers at the current schema and the vector store answers."""
    checks, ready = svc.readiness()
    if not ready:
        return JSONResponse(error_body("unavailable", "not ready", checks), status_code=503)
    return {"ready": True, "checks": checks}
