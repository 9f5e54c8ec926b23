"""What bounds the work one client can make the server do (the numbers: :mod:`lib.server.settings`).

- :class:`WorkQueue`: at most N jobs of a kind at once, M waiting, the next one refused (503);
- :class:`BodyLimit`: ASGI middleware; a body too large (413) or too slow (408);
- :class:`LoginThrottle`: password logins per client address and per user name (429);
- :class:`HeaderTimeoutProtocol`: uvicorn's HTTP/1.1 protocol with a deadline for a request's
  headers (a slowloris client is disconnected).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import QueueFull, TooManyAttempts


class WorkQueue:
    """At most ``workers`` jobs run at once and ``queue`` wait; one more is refused at once."""

    def __init__(self, name: str, workers: int, queue: int, typical_s: float) -> None:
        self.name, self.typical_s = name, typical_s
        self._running = threading.Semaphore(workers)
        self._admitted = threading.Semaphore(workers + queue)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise QueueFull(self.name, max(1, round(self.typical_s)))
        try:
            with self._running:
                yield
        finally:
            self._admitted.release()


class BodyLimit:
    """ASGI middleware for request bodies: larger than ``max_bytes`` is answered 413 (by its
    Content-Length before anything is read, or as soon as a streamed body passes the limit);
    slower than ``min_rate_bytes_s`` on average once ``grace_s`` have passed is answered 408
    (the wait for the next chunk is bounded by the time that rule allows)."""

    def __init__(self, app: ASGIApp, max_bytes: int, grace_s: float, min_rate_bytes_s: float) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.grace_s, self.min_rate_bytes_s = grace_s, min_rate_bytes_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self._too_large()}, status_code=413)
            await response(scope, receive, send)
            return
        started, seen = time.monotonic(), 0

        async def bounded() -> Message:
            nonlocal seen
            allowed_until = started + self.grace_s + seen / self.min_rate_bytes_s
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, allowed_until - time.monotonic()))
            except TimeoutError:
                raise HTTPException(408, f"request body too slow: {seen} bytes in {time.monotonic() - started:.0f} s "
                                    f"(at least {self.min_rate_bytes_s / 1024:g} KiB/s after "
                                    f"{self.grace_s:g} s)") from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._too_large())
            return message

        await self.app(scope, bounded, send)

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes / 2**20:g} MB"


class LoginThrottle:
    """At most ``attempts`` logins per minute from one client address and for one user name,
    counted over a sliding minute; the next is refused with :class:`TooManyAttempts`."""

    WINDOW_S = 60.0

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"address {address}", f"user {username.lower()}"):
                times = self._seen.setdefault(key, deque())
                while times and now - times[0] > self.WINDOW_S:
                    times.popleft()
                if len(times) >= self.attempts:
                    retry = max(1, math.ceil(self.WINDOW_S - (now - times[0])))
                    raise TooManyAttempts(f"too many login attempts from this {key.split()[0]}; "
                                          f"try again in {retry} s", retry)
            for key in (f"address {address}", f"user {username.lower()}"):
                self._seen[key].append(now)
            if len(self._seen) > 10_000:  # forget the quiet ones
                self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] <= self.WINDOW_S}


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers have not all arrived
    within ``header_timeout_s`` of the connection opening or of the previous response. Set
    ``HeaderTimeoutProtocol.header_timeout_s`` before the server starts (btl-server does)."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.logger.warning("closing a connection whose request headers took over %g s", self.header_timeout_s)
            self.transport.close()
