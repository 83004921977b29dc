"""Request-size and rate limits, both enforced before any endpoint code or database call.

Body size: uvicorn has no limit of its own, so a pure ASGI middleware reads the body up to
``max_body_bytes`` (refusing early on a larger Content-Length) and replays it to the app;
memory per request is bounded and an oversized body gets 413 without being parsed.

Rate: the `limits` library (moving window, storage in memory or Redis) in a pure ASGI
middleware, per client address. slowapi wraps the same library but cost ~0.3 ms per
request here (route matching and header bookkeeping on every call, a quarter of a top-10
lookup); a `limits` hit costs ~5 us. Counters live in each worker's memory unless
``rate_limit_storage`` points at Redis, so with N workers a client may get up to N times
the limit; that is fine for what this is for (one runaway client must not starve the
rest), and documented.
"""

from __future__ import annotations

import json

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
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send)
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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RateLimit:
    """JSON 429 with Retry-After once a client address exceeds any of ``limits``."""

    def __init__(self, app: ASGIApp, limits: list[RateLimitItem], storage_uri: str) -> None:
        self.app = app
        self.limits = limits
        self.limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            key = client[0] if client else "unknown"
            for item in self.limits:
                if not self.limiter.hit(item, key):
                    await _send_json(send, 429, "rate_limited", f"rate limit exceeded: {item}", {"retry-after": "1"})
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
