"""Conversation state: the last turns, the items just shown (so "why the second
one?" resolves), the focus item, the staff's current user and stated
preferences; saved as JSON under TASTEBUD_HOME/sessions and resumable by id."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tastebud.errors import InputError, NotFoundError, PermissionDenied, quote

MAX_TURNS = 20  # kept on disk; the prompts use fewer
_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")


def sessions_dir(home: str | Path) -> Path:
    return Path(home) / "sessions"


@dataclass
class Session:
    id: str
    role: str
    owner: str | None  # the end user's id; None for staff
    created_at: float = field(default_factory=time.time)
    target_user: str | None = None  # support/operator: the user being looked at
    turns: list[dict[str, Any]] = field(default_factory=list)
    shown: list[dict[str, Any]] = field(default_factory=list)  # [{item_id, title}] in display order
    shown_user: str | None = None
    request_id: str | None = None  # the request the shown items came from
    focus: dict[str, Any] | None = None  # the item last talked about

    @classmethod
    def new(cls, role: str, owner: str | None) -> "Session":
        """owner: the end user's id, or for staff whatever identifies them (the API
        uses the key id) so that nobody resumes another person's session."""
        return cls(id=secrets.token_hex(6), role=role, owner=owner, target_user=owner if role == "user" else None)

    # memory -----------------------------------------------------------------
    def remember_turn(self, question: str, answer: str, tool_calls: list[str]) -> None:
        self.turns.append({"q": question, "a": answer, "tools": tool_calls, "at": time.time()})
        del self.turns[:-MAX_TURNS]

    def remember_items(self, items: list[dict[str, Any]], user_id: str, request_id: str | None = None) -> None:
        self.shown = [{"item_id": str(i["item_id"]), "title": i.get("title") or str(i["item_id"])} for i in items]
        self.shown_user = user_id
        self.request_id = request_id
        if self.shown:
            self.focus = dict(self.shown[0], user_id=user_id, request_id=request_id)

    def shown_item(self, ordinal: int) -> dict[str, Any] | None:
        """1-based; -1 is the last one."""
        if not self.shown:
            return None
        if ordinal == -1:
            return self.shown[-1]
        return self.shown[ordinal - 1] if 1 <= ordinal <= len(self.shown) else None

    def recent_turns(self, n: int = 3) -> list[dict[str, Any]]:
        return self.turns[-n:]

    # persistence --------------------------------------------------------------
    def path(self, home: str | Path) -> Path:
        return sessions_dir(home) / f"{self.id}.json"

    def save(self, home: str | Path) -> Path:
        path = self.path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Its own temporary file: two turns of one session saved at once (the API
        # serves them on several threads) must not write into the same file.
        tmp = path.with_name(f"{path.stem}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, home: str | Path, session_id: str) -> "Session":
        if not _ID.match(session_id or ""):
            raise InputError(f"bad session id {quote(session_id)}")
        path = sessions_dir(home) / f"{session_id}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no saved session {quote(session_id)}", hint=f"sessions live in {path.parent}") from None
        except ValueError as exc:
            raise InputError(f"session {quote(session_id)} is unreadable: {exc}") from None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def resume_or_new(cls, home: str | Path, session_id: str | None, role: str, owner: str | None) -> "Session":
        """Resume only a session of the same role and owner: nobody picks up someone else's chat."""
        if not session_id:
            return cls.new(role, owner)
        session = cls.load(home, session_id)
        if session.role != role or session.owner != owner:
            raise PermissionDenied(f"session {session_id} belongs to another {'user' if session.owner else 'role'}")
        return session


# privacy ------------------------------------------------------------------------
def _mentions(data: dict[str, Any], user_id: str) -> bool:
    """Whether a saved session is with or about the user: theirs, a staff session
    looking at them, or one whose turns name them."""
    if user_id in (data.get("owner"), data.get("target_user"), data.get("shown_user")):
        return True
    if isinstance(data.get("focus"), dict) and data["focus"].get("user_id") == user_id:
        return True
    words = re.compile(rf"(?<![\w-]){re.escape(user_id)}(?![\w-])")
    return any(words.search(f"{t.get('q', '')}\n{t.get('a', '')}") for t in data.get("turns") or [])


def sessions_about(home: str | Path, user_id: str) -> list[tuple[Path, dict[str, Any]]]:
    """(file, content) of every saved session with or about the user (for export and forget)."""
    out = []
    folder = sessions_dir(home)
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        try:
            raw = path.read_text(errors="replace")
        except OSError:
            continue
        try:
            data = json.loads(raw)
        except ValueError:  # half-written temporary file: judge by its bytes
            data = None
        if (data is not None and isinstance(data, dict) and _mentions(data, user_id)) or (data is None and user_id in raw):
            out.append((path, data or {}))
    return out


def erase_sessions(home: str | Path, user_id: str) -> int:
    """Delete every saved session with or about the user; returns how many."""
    found = sessions_about(home, user_id)
    for path, _ in found:
        path.unlink(missing_ok=True)
    return len(found)
