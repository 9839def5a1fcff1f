"""The access log: one JSON line per request in TASTEBUD_HOME/logs/access.jsonl.

Who (key id, role, the key's user), what (method, path), when, status and
duration. Never the key, any header, the query string or the body (review
text, chat messages); PII in the path (an item id that is an e-mail address)
is masked (tastebud/pii.py). Several workers append to the same file: each line is
one small O_APPEND write.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from tastebud import pii

ACCESS_LOGGER = "tastebud.access"
FORGOTTEN_PATH = "/v1/users/(forgotten)"


def _forgotten_user(method: str | None, path: str | None) -> str | None:
    """The user id of a DELETE /v1/users/{id} (a forget), else None."""
    if method != "DELETE" or not path or not path.startswith("/v1/users/"):
        return None
    rest = path[len("/v1/users/"):]
    return rest if rest and "/" not in rest else None


def open_access_log(home: Path) -> logging.Logger:
    path = Path(home) / "logs" / "access.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    target = str(path.resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        handler = logging.FileHandler(target, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    return logger


class AccessLog:
    """Pure ASGI middleware (outermost, so 413s and 500s are logged too). The
    auth dependency leaves the caller in `scope["state"]["caller"]`."""

    def __init__(self, app, logger: logging.Logger):
        self.app = app
        self.logger = logger

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app fails before answering, the server answers 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            caller = (scope.get("state") or {}).get("caller")
            path, user = scope.get("path"), getattr(caller, "user_id", None)
            forgotten = _forgotten_user(scope.get("method"), path)
            if forgotten is not None:  # the log of a forget must not name whom it forgot
                path = FORGOTTEN_PATH
                user = None if user == forgotten else user
            self.logger.info(json.dumps({
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "key_id": getattr(caller, "key_id", None),
                "role": getattr(caller, "role", None),
                "user": user,
                "method": scope.get("method"),
                "path": pii.mask(path) if path else path,
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
            }, ensure_ascii=False))
