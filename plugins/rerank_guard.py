"""Airflow plugin: refuse a bad movielens_rerank trigger in the API server, before a run exists.

Airflow checks a run's conf against the DAG's Params (JSON Schema) when the run is created,
but that schema lets ``user_id: 17.0`` through (an integer to JSON Schema) so the run fails
inside the task, echoes the whole list when 1,001 candidates are refused, and leaves a
huge conf unanswered (measured: docs/AIRFLOW.md, "Hostile rerank Params"). This root middleware
sees ``POST /api/v2/dags/movielens_rerank/dagRuns`` first (before authentication, routing
and any parsing) and:

- answers 413 when the body is over ``RECSYS_RERANK_MAX_BODY_BYTES`` (``recsys.config.AirflowSettings``;
  default 1 MiB, 1,000 titles of 300 ASCII characters are ~0.3 MB), from Content-Length and while streaming;
- validates ``conf`` with the lookup API's own model (``recsys.api.schemas.RerankRequest``,
  the one the DAG's task uses) and answers 400 ``{"detail": "<one short reason>"}``;
- passes anything else on untouched, the body replayed as it came.

Plugins are imported by every Airflow component, so ``recsys`` is imported when the API
server builds its app (the limit) and at the first guarded request (the model). Other paths
cost one string comparison.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

DAG_ID = "movielens_rerank"
GUARDED_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns"
CONF_KEYS = ("user_id", "candidate_movies", "k")  # dags/movielens_rerank.py CONF_KEYS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


def conf_problem(conf: Any) -> str | None:
    """Why ``conf`` is not a valid rerank request (one short line), or None when it is."""
    from pydantic import ValidationError

    from recsys.api.schemas import RerankRequest, short_reason

    if not isinstance(conf, dict):
        return "conf must be a JSON object with user_id, candidate_movies and optionally k"
    unknown = sorted(str(key) for key in conf if key not in CONF_KEYS)
    if unknown:
        names = ", ".join(name[:40] for name in unknown[:3])
        return f"unknown conf key(s): {names}; the rerank DAG takes {', '.join(CONF_KEYS)}"
    try:
        RerankRequest.model_validate(conf)
    except ValidationError as exc:
        return short_reason(exc)
    return None


class RerankGuard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer every response of the API server)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        if max_body_bytes is None:
            from recsys.config import AirflowSettings, load_settings

            max_body_bytes = load_settings(AirflowSettings).rerank_max_body_bytes  # ConfigError naming a bad value
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != GUARDED_PATH:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        try:
            body, more = await self._read(receive)
        except BodyTooLarge:
            await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        if not more:
            return  # the client went away
        problem = _problem(body)
        if problem is not None:
            await _answer(send, 400, f"invalid rerank request: {problem}")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, refused as soon as it passes the limit; (body, False) on a disconnect."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def _problem(body: bytes) -> str | None:
    """None when Airflow should see this body; else the reason it may not."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: Airflow answers it as for any DAG (422), and creates no run
    if not isinstance(document, dict) or document.get("conf") is None:
        return None  # no conf: Airflow's Params check refuses the missing user_id itself
    return conf_problem(document["conf"])


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RerankGuardPlugin(AirflowPlugin):
    name = "rerank_guard"
    fastapi_root_middlewares = [{"name": "movielens_rerank guard", "middleware": RerankGuard}]
