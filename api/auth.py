"""Bearer key -> caller, the per-key rate limit, and what each role may reach.

======== ===================================================== ==============
role     may                                                   users
======== ===================================================== ==============
user     read own profile/history/recommendations/why, post    own only
         own events, chat (pinned to self)
support  read every user's profile/history/recommendations/    any
         why, chat as support; writes nothing (a served
         recommendation list is logged, as for the user)
operator everything: events, refresh, status, reads, chat,      any
         export and forget
======== ===================================================== ==============

A user key may also export, forget and opt out (or back in) its own user.

Checks run in code before a route does any work; every refusal is a 403.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tastebud.agent.roles import Role
from tastebud.api.errors import Unauthorized
from tastebud.api.keys import ApiKey
from tastebud.api.services import Services
from tastebud.errors import PermissionDenied


class Action(str, Enum):
    READ_USER = "read a user's data"
    WRITE_EVENTS = "post events"
    CHAT = "chat"
    ADMIN = "administer the service"
    DATA_RIGHTS = "export, forget or opt out a user's data"


ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ_USER: frozenset({Role.USER, Role.SUPPORT, Role.OPERATOR}),
    Action.WRITE_EVENTS: frozenset({Role.USER, Role.OPERATOR}),
    Action.CHAT: frozenset({Role.USER, Role.SUPPORT, Role.OPERATOR}),
    Action.ADMIN: frozenset({Role.OPERATOR}),
    Action.DATA_RIGHTS: frozenset({Role.USER, Role.OPERATOR}),  # a user for itself; support never
}

bearer = HTTPBearer(auto_error=False, description="An API key from `tastebud keys create`.")


async def services(request: Request) -> Services:
    """The process's services (async: no I/O, so no trip through the threadpool)."""
    return request.app.state.services


def authenticate(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
    """The caller's live key, charged one token of its rate limit."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send Authorization: Bearer KEY")
    svc: Services = request.app.state.services
    key = svc.keys.verify(credentials.credentials)
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    request.state.caller = key  # for the access log
    svc.limiter.take(key.key_id)
    return key


def check(key: ApiKey, action: Action, user_id: str | None = None) -> None:
    """Raise PermissionDenied unless this key may do `action` (on `user_id`)."""
    role = Role(key.role)
    if role not in ALLOWED[action]:
        raise PermissionDenied(f"a {role.value} key may not {action.value}")
    if role is Role.USER and user_id is not None and user_id != key.user_id:
        raise PermissionDenied("a user key reaches only its own user")


def allow(action: Action):
    """A dependency: the authenticated key, allowed to do `action` on the path's user."""

    async def dependency(request: Request, key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
        check(key, action, request.path_params.get("user_id"))
        return key

    return dependency
