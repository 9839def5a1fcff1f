"""Every failure as JSON `{"error": {"code", "message"}}` with a stable code.

The API's own errors join the one hierarchy (`tastebud.errors`); each class of
it, FastAPI's validation errors and Starlette's HTTP errors map to one code
and status here, and anything unexpected is `internal` without a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from tastebud import pii
from tastebud.errors import (
    ConfigError,
    InputError,
    ModelError,
    NotFoundError,
    PermissionDenied,
    StoreError,
    TastebudError,
    cap,
)

log = logging.getLogger("tastebud.api")


class Unauthorized(TastebudError):
    """No API key, an unknown one, or a revoked one."""

    exit_code = 77


class RateLimited(TastebudError):
    """The key spent its token bucket; `retry_after` says when one is back."""

    exit_code = 75  # EX_TEMPFAIL

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(InputError):
    """A request body or an events batch above the configured limits."""


# code -> HTTP status; codes are part of the API contract: never rename one.
STATUS = {
    "invalid_request": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}

# Most specific class first.
_CODES: tuple[tuple[type[TastebudError], str], ...] = (
    (Unauthorized, "unauthorized"),
    (RateLimited, "rate_limited"),
    (PermissionDenied, "forbidden"),
    (PayloadTooLarge, "payload_too_large"),
    (NotFoundError, "not_found"),
    (InputError, "invalid_request"),
    (StoreError, "unavailable"),
    (ModelError, "unavailable"),
    (ConfigError, "unavailable"),
)

_BY_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 401: "unauthorized",
              403: "forbidden", 429: "rate_limited", 503: "unavailable"}


def code_for(exc: TastebudError) -> str:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "internal"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": cap(message)}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(code, message, details), status_code=STATUS[code], headers=headers)


def install(app: Any) -> None:
    """Register the handlers on a FastAPI app."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(TastebudError)
    async def tastebud_error(request, exc: TastebudError):
        code = code_for(exc)
        headers = None
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
        if code in ("internal", "unavailable"):
            log.warning("%s %s: %s: %s", request.method, pii.mask(request.url.path), type(exc).__name__, pii.mask(str(exc)))
        # The message without its hint: hints are for a terminal (CLI commands, server paths).
        message = str(exc.args[0]) if exc.args else code.replace("_", " ")
        return error_response(code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        details = [{"loc": [cap(str(p), 100) for p in e.get("loc", ())], "msg": cap(str(e.get("msg", "")), 200),
                    "type": str(e.get("type", ""))} for e in exc.errors()[:20]]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "request"
        return error_response("invalid_request", f"{where}: {first['msg']}", details)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        code = _BY_STATUS.get(exc.status_code, "invalid_request" if 400 <= exc.status_code < 500 else "internal")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(code, message, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.error("%s %s failed", request.method, pii.mask(request.url.path), exc_info=exc)
        return error_response("internal", f"internal error ({type(exc).__name__})")
