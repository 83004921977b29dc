"""Request-size and rate limits, both enforced before any endpoint code or database call.

Body size: uvicorn has no limit of its own, so a pure ASGI middleware refuses a declared
Content-Length over ``max_body_bytes`` at once (413, nothing read). A body with a
Content-Length at or under the limit passes through untouched: the HTTP parser delivers
exactly that many bytes. Only a chunked body, whose size is not declared, is read up to
the limit and replayed to the app; memory per request is bounded and an oversized body
gets 413 without being parsed.

Rate: a moving window per client address, in a pure ASGI middleware. With the default
in-memory storage it is ``MemoryMovingWindow`` below, not the `limits` library's memory
storage: that one starts a ``threading.Timer`` every 10 ms to expire entries, and the
timer thread competes for the GIL with the event loop (CPU per request and p99 in
docs/API.md, "Design notes"). A shared storage (``rate_limit_storage`` = redis://...)
still goes through `limits`. slowapi wraps the same library and adds route matching and
header bookkeeping to every call.
In-memory counters live in each worker, so with N workers a client may get up to N times
the limit; that is fine for what this is for (one runaway client must not starve the
rest), and documented.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable

from fastapi import FastAPI
from limits import RateLimitItem, parse_many, storage, strategies
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys.api.settings import ApiSettings


class BodySizeLimit:
    """Reject request bodies larger than ``max_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
            return
        if not chunked:  # no body, or exactly `declared` bytes: the HTTP parser enforces the framing
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        detail = f"request body is larger than {self.max_bytes} bytes"
        await _send_json(send, 413, "body_too_large", detail, {"connection": "close"})  # the rest is never read


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, or None if absent or unreadable; whether Transfer-Encoding is present)."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                chunked = True  # unreadable: count what actually arrives
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


class MemoryMovingWindow:
    """`limits`' moving window (a hit is allowed if fewer than ``amount`` hits were
    allowed in the last ``expiry`` seconds), kept in this process with no background thread.

    One deque of hit times per (limit, client), trimmed on each hit, so it never holds
    more than ``amount`` entries; clients idle for longer than every window are dropped by
    a sweep at most once per longest window. A hit is a few microseconds. ``clock`` gives the
    time in seconds (monotonic; a test passes its own).
    """

    def __init__(self, limits: list[RateLimitItem], clock: Callable[[], float] = time.monotonic) -> None:
        self.windows = [(item.amount, float(item.get_expiry())) for item in limits]
        self.longest = max((expiry for _, expiry in self.windows), default=1.0)
        self.logs: dict[tuple[int, str], deque[float]] = {}
        self.clock = clock
        self.next_sweep = clock() + self.longest

    def hit(self, index: int, key: str) -> bool:
        now = self.clock()
        if now >= self.next_sweep:
            self._sweep(now)
        amount, expiry = self.windows[index]
        log = self.logs.get((index, key))
        if log is None:
            log = self.logs[(index, key)] = deque()
        horizon = now - expiry
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) >= amount:
            return False
        log.append(now)
        return True

    def _sweep(self, now: float) -> None:
        horizon = now - self.longest
        for key in [key for key, log in self.logs.items() if not log or log[-1] <= horizon]:
            del self.logs[key]
        self.next_sweep = now + self.longest


class RateLimit:
    """JSON 429 with Retry-After once a client address exceeds any of ``limits``."""

    def __init__(self, app: ASGIApp, limits: list[RateLimitItem], storage_uri: str) -> None:
        self.app = app
        self.limits = limits
        self.memory = MemoryMovingWindow(limits) if storage_uri.startswith("memory://") else None
        self.limiter = (
            None if self.memory else strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        )

    def _allowed(self, key: str) -> RateLimitItem | None:
        """None if this hit is allowed, else the limit it exceeds (earlier limits count it)."""
        for index, item in enumerate(self.limits):
            if not (self.memory.hit(index, key) if self.memory else self.limiter.hit(item, key)):
                return item
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            exceeded = self._allowed(client[0] if client else "unknown")
            if exceeded is not None:
                await _send_json(send, 429, "rate_limited", f"rate limit exceeded: {exceeded}", {"retry-after": "1"})
                return
        await self.app(scope, receive, send)


async def _send_json(send: Send, status: int, error: str, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, settings: ApiSettings) -> None:
    """Add both limits; the rate limit is outermost, so a flood costs no body reading."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.rate_limit.strip():
        app.add_middleware(RateLimit, limits=parse_many(settings.rate_limit), storage_uri=settings.rate_limit_storage)
