"""Who is asking, and what they may reach. Enforced in code, before any tool runs,
whatever a prompt, a model or an item description says.

======== ================================================ =========================
role     tools                                            user argument
======== ================================================ =========================
user     read tools + recommend + record_feedback         pinned to their own id
         + opt_out (of profiling, or back in)
support  read tools only (profile, history, explain,      any user
         search, recommendation log)
operator support's tools + refresh_profiles + status      any user
======== ================================================ =========================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tastebud.errors import InputError, PermissionDenied

READ_TOOLS = frozenset({"get_profile", "get_history", "explain", "search_items", "recommendation_log"})
USER_TOOLS = READ_TOOLS | {"recommend", "record_feedback", "opt_out"}
OPERATOR_TOOLS = READ_TOOLS | {"refresh_profiles", "status"}
ALL_TOOLS = USER_TOOLS | OPERATOR_TOOLS
USERLESS_TOOLS = frozenset({"search_items", "status", "refresh_profiles"})


class Role(str, Enum):
    USER = "user"
    SUPPORT = "support"
    OPERATOR = "operator"


TOOLS_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.USER: USER_TOOLS,
    Role.SUPPORT: READ_TOOLS,
    Role.OPERATOR: OPERATOR_TOOLS,
}

_WHY_NOT = {
    "recommend": ("staff sessions don't serve recommendations (a new list would be logged as served to the user); "
                  "the recommendation log shows what the user was shown"),
    "record_feedback": "only the user themself can record their feedback",
    "opt_out": "only the user themself can opt out of profiling (an operator uses `tastebud optout U`)",
    "refresh_profiles": "refreshing profiles needs the operator role",
    "status": "system status needs the operator role",
}


@dataclass(frozen=True)
class Principal:
    role: Role
    user_id: str | None = None  # the end user's own id (pinned); unused for staff

    def __post_init__(self) -> None:
        if self.role is Role.USER and not self.user_id:
            raise InputError("an end-user session needs a user id", hint="tastebud chat --user U")

    @classmethod
    def of(cls, role: str | Role | None, user_id: str | None) -> "Principal":
        """From CLI flags: `--user U` alone is an end user; `--as support|operator` is staff."""
        if role is None or str(getattr(role, "value", role)) == "user":
            return cls(Role.USER, user_id)
        try:
            return cls(Role(str(getattr(role, "value", role))), None)
        except ValueError:
            raise InputError(f"unknown role {role!r}", hint="use --as support or --as operator") from None

    @property
    def tools(self) -> frozenset[str]:
        return TOOLS_BY_ROLE[self.role]

    @property
    def is_staff(self) -> bool:
        return self.role is not Role.USER

    def allows(self, tool: str) -> bool:
        return tool in self.tools

    def check_tool(self, tool: str) -> None:
        if not self.allows(tool):
            reason = _WHY_NOT.get(tool, f"the {self.role.value} role cannot use {tool}")
            raise PermissionDenied(f"Sorry, I can't do that here: {reason}.")

    def resolve_user(self, requested: str | None, default: str | None = None) -> str:
        """The user a tool call may touch. An end user is pinned: asking for
        anyone else is refused. Staff name any user (or the session's current one)."""
        requested = str(requested).strip() if requested not in (None, "") else None
        if self.role is Role.USER:
            if requested is not None and requested != self.user_id:
                raise PermissionDenied("Sorry, I can only show you your own data.")
            return str(self.user_id)
        chosen = requested or default
        if not chosen:
            raise InputError("Which user? Name one (\"user 42\") or pick one with /user 42.")
        return chosen

    def describe(self) -> str:
        return f"user {self.user_id}" if self.role is Role.USER else self.role.value
