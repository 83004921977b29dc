"""HTTP details FastAPI leaves open, as pure ASGI middlewares: HEAD on every GET endpoint,
and a query string that must be valid UTF-8.

HEAD: FastAPI routes answer only the methods they declare, so HEAD on a GET endpoint was
a 405; here HEAD runs the GET endpoint and the body is dropped, headers (Content-Length
included) kept, as RFC 9110 asks.

Query: Starlette decodes percent-escapes with ``errors="replace"``, so ``title=%ff%fe``
reached the endpoint as two U+FFFD characters; a query whose escapes are not UTF-8 is a
422 in the usual error shape before any endpoint runs.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys.api.errors import error_response


class HeadAsGet:
    """Answer HEAD as GET, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)


def invalid_utf8_names(query_string: bytes) -> list[str]:
    """Names of the query parameters whose name or value is not UTF-8 once unescaped."""
    if query_string.isascii() and b"%" not in query_string:
        return []  # the common case: nothing to unescape
    bad = []
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        try:
            raw_name = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            bad.append(name.decode("latin-1"))
            continue
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            bad.append(raw_name)
    return bad


class Utf8Query:
    """422 for a query string that is not UTF-8 (docs/API.md promises it for text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bad = invalid_utf8_names(scope.get("query_string", b""))
            if bad:
                detail = [
                    {"loc": ["query", name], "msg": "must be valid UTF-8 text", "type": "value_error"} for name in bad
                ]
                await error_response(422, "invalid_request", detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)
