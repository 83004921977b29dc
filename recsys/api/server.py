"""Connection-level guards for ``recsys serve``: uvicorn's httptools protocol with head and
body deadlines, a cap on connections per client address, and a JSON 503 past the limit of
requests in progress.

Why a protocol subclass: uvicorn (pinned in constraints.txt) has no header or body read
timeout, and its ``limit_concurrency`` counts open connections, so idle or half-sent
sockets from one client made every other client get its plain-text 503; its keep-alive
timer only starts after a first response. uvicorn takes an HTTP protocol class as
``http=`` (an import string, so every worker process loads it), which keeps uvloop and
httptools and their measured per-request cost (docs/API.md). Servers with header timeouts
(hypercorn, granian) would mean a new dependency and a pure-Python parser or a re-measured
stack, and neither caps connections per client.

Per connection:

- The request head (request line and headers) must be complete within
  ``header_timeout_s`` of the connection opening, or of the first byte of a later request;
  otherwise the connection is closed. Idle sockets, a half-sent request line and headers
  trickled a byte at a time all end there. Between requests the keep-alive timeout applies.
- The body must be complete within ``body_timeout_s`` of the head; otherwise the connection
  is closed and the endpoint sees a disconnect.
- A client address with ``max_connections_per_client`` connections open in this worker
  gets a JSON 429 on any further one, which is then closed. Trusted proxies are exempt:
  their connections carry many clients.
- With ``max_concurrency`` requests in progress in this worker, a new request gets a JSON
  503 (``unavailable``, Retry-After) and its connection is closed. Open connections that
  have not sent a request do not count.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import Counter
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from recsys.api.errors import RETRY_AFTER_S, error_response
from recsys.api.settings import ApiSettings, get_api_settings

# Open connections per client address in this process (one uvicorn server per worker process).
_OPEN: Counter[str] = Counter()


def uvicorn_options(settings: ApiSettings) -> dict[str, Any]:
    """The ``uvicorn.run`` options that come from the API's settings."""
    trusted = settings.trusted_proxy_list()
    return {
        "http": f"{__name__}:GuardedHttpToolsProtocol",
        "timeout_keep_alive": settings.keep_alive_s,
        "proxy_headers": bool(trusted),  # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise
        "forwarded_allow_ips": ",".join(trusted) if trusted else "",
    }


def is_trusted(host: str | None, trusted: list[str]) -> bool:
    """Whether ``host`` is one of the trusted proxy addresses or networks."""
    if not trusted or host is None:
        return False
    if "*" in trusted:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(item, strict=False) for item in trusted)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guards described in the module docstring."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_api_settings()
        self.limit_concurrency = None  # replaced by the in-progress check in on_headers_complete
        self.max_concurrency = settings.max_concurrency
        self.header_timeout_s = settings.header_timeout_s
        self.body_timeout_s = settings.body_timeout_s
        self.max_per_client = settings.max_connections_per_client
        self.trusted = settings.trusted_proxy_list()
        self.counted_as: str | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        if host is not None and not is_trusted(host, self.trusted):
            if _OPEN[host] >= self.max_per_client:
                detail = f"this address already has {self.max_per_client} open connections, the limit"
                self._refuse_at_once(429, "too_many_connections", detail, {"retry-after": "1"})
                return
            _OPEN[host] += 1
            self.counted_as = host
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.counted_as is not None:
            _OPEN[self.counted_as] -= 1
            if _OPEN[self.counted_as] <= 0:
                del _OPEN[self.counted_as]
            self.counted_as = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None:  # a later request on a kept-alive connection: its head starts now
            self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._disarm()
        if len(self.tasks) < self.max_concurrency:
            super().on_headers_complete()
        else:
            app, self.app = self.app, _overloaded(self.max_concurrency)
            try:
                super().on_headers_complete()  # runs the refusal as this request's app
            finally:
                self.app = app
        self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_at_once(self, status: int, error: str, detail: str, extra: dict[str, str]) -> None:
        """Answer before reading anything (a server may) and close: this connection costs nothing more."""
        body = json.dumps({"error": error, "detail": detail}).encode()
        head = [f"HTTP/1.1 {status} {_PHRASES[status]}", "content-type: application/json"]
        head += [f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in extra.items()), "connection: close"]
        self.transport.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        self.transport.close()


_PHRASES = {429: "Too Many Requests"}


def _overloaded(limit: int) -> Any:
    detail = f"the server has {limit} requests in progress; retry shortly"
    headers = {"Retry-After": RETRY_AFTER_S, "Connection": "close"}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await error_response(503, "unavailable", detail, headers)(scope, receive, send)

    return app
