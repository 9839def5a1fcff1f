"""API keys: created from the CLI, shown once, stored as a SHA-256 of the secret.

A key reads `tb_<key_id>_<secret>`: the key id is public (access log, `keys
list`, `keys revoke`), the secret is 32 random bytes. A looked-up key is
compared in constant time. SHA-256 rather than a slow password hash because
the secret has 256 bits of entropy: there is nothing to brute-force, and a
slow hash would cost every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update

from tastebud.agent.roles import Principal, Role
from tastebud.profiles.migrations import api_keys
from tastebud.profiles.store import EventStore
from tastebud.errors import InputError, NotFoundError, StoreError

KEY_PREFIX = "tb"
LAST_USED_EVERY_MS = 60_000  # last_used_at is a write: at most once a minute per key and process


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    prefix: str
    role: str
    user_id: str | None
    name: str | None
    created_at: int
    revoked_at: int | None = None
    last_used_at: int | None = None

    @property
    def principal(self) -> Principal:
        return Principal(Role(self.role), self.user_id)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyStore:
    def __init__(self, store: EventStore):
        self.store = store
        self._touched: dict[str, int] = {}
        self._lock = threading.Lock()

    def create(self, role: str, user_id: str | None = None, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its full text (the only time the secret exists in clear)."""
        try:
            role_ = Role(role)
        except ValueError:
            raise InputError(f"unknown role {role!r}", hint="user, support or operator") from None
        user_id = (user_id or "").strip() or None
        if role_ is Role.USER and not user_id:
            raise InputError("a user key needs the user it belongs to", hint="--user U")
        if role_ is not Role.USER and user_id:
            raise InputError(f"a {role_.value} key reaches every user; drop --user")
        if user_id and len(user_id) > 64:
            raise InputError("user id longer than 64 characters")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        full = f"{KEY_PREFIX}_{key_id}_{secret}"
        record = ApiKey(key_id, full[:16], role_.value, user_id, name, _now_ms())
        with self.store.transaction() as conn:
            conn.execute(api_keys.insert().values(secret_sha256=_digest(secret), **{
                k: v for k, v in record.as_dict().items() if k not in ("revoked_at", "last_used_at")}))
        return record, full

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        query = select(*[c for c in api_keys.c if c.name != "secret_sha256"]).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.store.engine.connect() as conn:
            return [ApiKey(**dict(r)) for r in conn.execute(query).mappings()]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke now; effective on the next request to any worker (keys are not cached)."""
        with self.store.transaction() as conn:
            conn.execute(update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=_now_ms()))
            row = conn.execute(select(*[c for c in api_keys.c if c.name != "secret_sha256"])
                               .where(api_keys.c.key_id == key_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}", hint="tastebud keys list")
        return ApiKey(**dict(row))

    def verify(self, key: str) -> ApiKey | None:
        """The live key this text is, or None (malformed, unknown, wrong secret or revoked)."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        with self.store.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)) or row["revoked_at"] is not None:
            return None
        self._touch(key_id)
        return ApiKey(**{k: v for k, v in row.items() if k != "secret_sha256"})

    def _touch(self, key_id: str) -> None:
        now = _now_ms()
        with self._lock:
            if now - self._touched.get(key_id, 0) < LAST_USED_EVERY_MS:
                return
            self._touched[key_id] = now
        try:
            with self.store.transaction() as conn:
                conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=now))
        except StoreError:  # bookkeeping: never worth failing the request it belongs to
            pass
