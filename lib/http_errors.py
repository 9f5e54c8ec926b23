"""Typed errors -> HTTP responses with a message, for the MONAI Label server.

MONAI Label's endpoints call the app and the datastore directly and turn any other
exception into a bare 500, so the app raises FastAPI's ``HTTPException`` itself: bad input
is the client's to fix (4xx, with the reason), and the server stays up.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import HTTPException

from lib.errors import ConflictError, InputError, ModelUnavailableError, PacsUnavailableError, UnknownIdError

logger = logging.getLogger(__name__)

#: Error class -> HTTP status; the first match wins.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownIdError, 404),
    (ConflictError, 409),
    (InputError, 422),
    (PacsUnavailableError, 503),
    (ModelUnavailableError, 503),
)

T = TypeVar("T")


def http_status(exc: BaseException) -> int | None:
    """The status for a typed error, or None for anything else (a server fault)."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), None)


@contextmanager
def http_errors() -> Iterator[None]:
    """Re-raise typed errors as ``HTTPException`` with their message."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        status = http_status(exc)
        if status is None:
            raise
        message = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
        logger.warning("%d: %s", status, message)
        raise HTTPException(status_code=status, detail=message) from exc


_boundary = threading.local()


def _at_the_boundary(func: Callable[..., T]) -> Callable[..., T]:
    """:func:`http_errors` around ``func``, but only for the outermost wrapped call on this
    thread: a method that calls another one (``datalist`` -> ``study_path``) still sees the
    typed error and can handle it; only what leaves the object becomes an HTTP answer."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        if getattr(_boundary, "inside", False):
            return func(*args, **kwargs)
        _boundary.inside = True
        try:
            with http_errors():
                return func(*args, **kwargs)
        finally:
            _boundary.inside = False
    return wrapper


def with_http_errors(cls: type[T]) -> type[T]:
    """A subclass of ``cls`` whose public methods raise ``HTTPException`` for typed errors
    that leave the object (see :func:`_at_the_boundary`)."""
    methods = {name: _at_the_boundary(getattr(cls, name)) for name in dir(cls)
               if not name.startswith("_") and callable(getattr(cls, name))}
    return type(f"Http{cls.__name__}", (cls,), methods)
