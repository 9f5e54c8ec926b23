"""The typed-error boundary: errors raised in ``lib/`` become HTTP answers here, and only here.

Inside ``lib/`` errors stay typed, so one method can call another and handle what it raises.
Each route wraps its work in :func:`http_errors`; :data:`STATUS` is the one table from error
class to status. Messages go to the client with every absolute path of this machine cut to
its last part (a study's or an upload's file name), so an answer never shows the server's
folders nor tells which of its paths exist. Anything else is a server fault: logged whole,
answered 500 with no detail.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from lib.errors import (
    ConflictError,
    ImageTooLargeError,
    InputError,
    ModelUnavailableError,
    PacsUnavailableError,
    UnknownIdError,
)


class QueueFull(Exception):
    """Every worker is busy and the queue is full: 503, try again in ``retry_after_s``."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"the server is busy with {what}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class TooManyAttempts(Exception):
    """Too many attempts from one client or for one user name: 429, try again later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooSlow(Exception):
    """A request body that arrives slower than the server accepts: 408."""


logger = logging.getLogger(__name__)

#: Error class -> HTTP status; the first match wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownIdError, 404),
    (RequestTooSlow, 408),
    (ConflictError, 409),
    (ImageTooLargeError, 413),
    (InputError, 422),
    (json.JSONDecodeError, 422),
    (TooManyAttempts, 429),
    (PacsUnavailableError, 503),
    (ModelUnavailableError, 503),
    (QueueFull, 503),
)

#: An absolute path: a "/" that starts a word (not inside a URL or a relative path), at least
#: one folder, then the last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/,;()]+/)+([^\s'\"/,;()]*)")


def http_status(exc: BaseException) -> int | None:
    """The status for a typed error, or None for anything else (a server fault)."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), None)


def public_message(message: str) -> str:
    """``message`` with each absolute path cut to its last part ("/srv/studies/A/A-t1c.nii.gz"
    becomes "A-t1c.nii.gz")."""
    return _ABSOLUTE_PATH.sub(lambda match: match[1] or "(folder)", message)


def describe(exc: BaseException) -> str:
    """What the client is told of a typed error."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON in the request ({exc.msg})"
    message = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
    return public_message(message)


def _headers(exc: BaseException) -> dict[str, str]:
    retry = getattr(exc, "retry_after_s", None)
    return {"Retry-After": str(retry)} if isinstance(retry, int) else {}


@contextmanager
def http_errors() -> Iterator[None]:
    """Re-raise typed errors as ``HTTPException`` with their (public) message."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        status = http_status(exc)
        if status is None:
            raise
        logger.warning("%d: %s", status, exc)  # the log keeps the full message
        raise HTTPException(status_code=status, detail=describe(exc), headers=_headers(exc) or None) from exc


def install_error_handlers(app: FastAPI) -> None:
    """Typed errors that escape a route (or a dependency) answered by :data:`STATUS`; FastAPI's
    validation errors without echoing the input; anything else a bare 500 with no detail."""

    async def typed(request: Request, exc: Exception) -> Response:
        status = http_status(exc) or 500
        if status == 500:
            logger.exception("server fault on %s %s", request.method, request.url.path, exc_info=exc)
            return JSONResponse({"detail": "internal server error"}, status_code=500)
        logger.warning("%d %s %s: %s", status, request.method, request.url.path, exc)
        return JSONResponse({"detail": describe(exc)}, status_code=status, headers=_headers(exc))

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's 422, without the input (it may be huge, not JSON-safe like 1e999, or a password)."""
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    for error, _ in STATUS:
        app.add_exception_handler(error, typed)
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, typed)
