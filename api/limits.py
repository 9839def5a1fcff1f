"""Request limits: the body size (chunked bodies too) and a per-key token bucket."""

from __future__ import annotations

import threading
import time

from tastebud.api.errors import RateLimited, error_body


class TokenBuckets:
    """One bucket per API key, in process memory: `rate` tokens a second up to
    `burst`. With several workers each has its own buckets, so a key's limit
    is per worker (see README)."""

    MAX_KEYS = 100_000  # forget idle buckets beyond this many keys

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token or raise RateLimited with the wait until the next one."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(f"rate limit exceeded: {self.rate:g} requests/s, bursts of {self.burst:g}",
                                  retry_after=wait)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX_KEYS:
                self._buckets.pop(next(iter(self._buckets)))


class BodyLimit:
    """Pure ASGI middleware: a JSON 413 for a body above `max_body_size`.

    A declared Content-Length is refused before the app runs; a body without
    one (chunked) is counted as it arrives, and the read that crosses the
    limit raises HTTPException(413), which FastAPI passes on untouched to the
    JSON error handlers. (FastAPI's own `max_body_size` answers some of these
    cases in plain text, hence this.)"""

    def __init__(self, app, max_body_size: int):
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    from fastapi.responses import JSONResponse

                    body = error_body("payload_too_large", f"the request body is larger than {limit} bytes")
                    await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
                    return
                break
        received = 0

        async def receive_within_limit():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        await self.app(scope, receive_within_limit, send)
