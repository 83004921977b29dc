"""Connection-level behaviour of ``recsys serve`` over real sockets: idle, half-sent and
trickled requests are closed on time, one address cannot hold the server, overload is a
JSON 503, and X-Forwarded-For is believed only from a configured proxy.

Other clients connect from 127.0.0.2 (Linux routes all of 127/8 to loopback), so they are
a different client address from the sockets that misbehave on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import ApiServer, Published
from tests.support.db import as_role

OTHER_ADDRESS = "127.0.0.2"
SLACK_S = 1.5  # scheduling on a shared 2-core machine
HALF_SENT = b"GET /users/17/recommendations HTT"  # no end of line, no headers


@contextlib.contextmanager
def server(baseline: Published, **settings: str) -> Iterator[ApiServer]:
    api = ApiServer(as_role(baseline.url), **settings)
    try:
        yield api
        assert "Traceback" not in api.output(), api.output()
    finally:
        api.stop()


def other_client(api: ApiServer) -> httpx.Client:
    return httpx.Client(base_url=api.base, timeout=10.0, transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS))


def open_sockets(port: int, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def wait_closed(sockets: list[socket.socket], since: float, within_s: float) -> tuple[dict[socket.socket, float], dict]:
    """Read every socket until the server closes it: (seconds from ``since`` to each close, bytes each got)."""
    closed: dict[socket.socket, float] = {}
    received: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(sockets) and time.monotonic() - since < within_s:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    received[sock] += data
                else:
                    closed[sock] = time.monotonic() - since
                    selector.unregister(sock)
    return closed, received


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def json_body(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw
    return json.loads(body)


def test_idle_and_half_sent_connections_do_not_lock_others_out(baseline: Published):
    """600 idle or half-sent sockets from one address (more than the 512 requests in progress
    a worker takes): another client is served, the address's sockets beyond its cap get a
    JSON 429 at once, and the rest are closed when the head deadline passes."""
    timeout_s, per_client = 1.0, 40
    settings = {"header_timeout_s": str(timeout_s), "max_connections_per_client": str(per_client)}
    with server(baseline, **settings, keep_alive_s="1") as api, other_client(api) as other:
        opened = time.monotonic()
        slow = open_sockets(api.port, 300) + open_sockets(api.port, 300, HALF_SENT)
        try:
            assert other.get("/health").status_code == 200
            top = other.get("/users/17/recommendations")
            assert top.status_code == 200, top.text
            with httpx.Client(base_url=api.base, timeout=10.0) as crowded:  # a new connection from the busy address
                refused_now = crowded.get("/health")
            assert refused_now.status_code == 429 and refused_now.json()["error"] == "too_many_connections"
            closed, received = wait_closed(slow, since=opened, within_s=timeout_s + SLACK_S + 3)
        finally:
            close_all(slow)
        assert len(closed) == len(slow), f"{len(slow) - len(closed)} of {len(slow)} slow sockets still open"
        refused = [sock for sock in slow if received[sock]]
        held = [sock for sock in slow if not received[sock]]
        assert len(slow) - per_client <= len(refused) < len(slow)
        for sock in refused:
            assert received[sock].startswith(b"HTTP/1.1 429 "), received[sock]
            assert json_body(received[sock])["error"] == "too_many_connections"
        assert max(closed[sock] for sock in refused) < timeout_s  # at once, not at the deadline
        assert timeout_s <= min(closed[sock] for sock in held)  # the head deadline, counted from the open
        assert max(closed[sock] for sock in held) <= timeout_s + SLACK_S
        assert api.client.get("/health").status_code == 200  # the address is welcome again


def test_headers_trickled_a_byte_at_a_time_are_cut_at_the_deadline(baseline: Published):
    timeout_s = 1.0
    with server(baseline, header_timeout_s=str(timeout_s)) as api:
        sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 100 + b"\r\n"
        start = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in request:  # a byte every 50 ms: the whole head would take ~60 s
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - start > timeout_s + SLACK_S + 2:
                    break
        elapsed = time.monotonic() - start
        sock.settimeout(2)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""  # closed, nothing answered
        sock.close()
        assert timeout_s - 0.2 <= elapsed <= timeout_s + SLACK_S


def test_requests_in_progress_beyond_the_limit_get_json_503_and_slow_bodies_are_cut(baseline: Published):
    body_timeout_s, limit = 1.5, 8
    settings = {"body_timeout_s": str(body_timeout_s), "max_concurrency": str(limit)}
    head = (
        b"POST /recommendation/ranked_recommendation HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"  # 99 bytes never come
    )
    with server(baseline, **settings) as api, other_client(api) as other:
        stalled = open_sockets(api.port, limit, head)
        started = time.monotonic()
        try:
            time.sleep(0.3)  # let the server start all of them
            busy = other.get("/users/17/recommendations")
            assert busy.status_code == 503, busy.text
            assert busy.json() == {
                "error": "unavailable",
                "detail": f"the server has {limit} requests in progress; retry shortly",
            }
            assert busy.headers["retry-after"] == "2"
            closed, received = wait_closed(stalled, since=started, within_s=body_timeout_s + SLACK_S + 3)
        finally:
            close_all(stalled)
        assert len(closed) == limit and not any(received.values())  # cut without an answer
        assert body_timeout_s - 0.3 <= min(closed.values()) and max(closed.values()) <= body_timeout_s + SLACK_S
        assert other.get("/users/17/recommendations").status_code == 200


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(baseline: Published):
    """From loopback, distinct X-Forwarded-For values used to get a fresh rate limit each."""

    def statuses(api: ApiServer, forwarded: list[str]) -> list[int]:
        return [api.client.get("/health", headers={"X-Forwarded-For": f}).status_code for f in forwarded]

    distinct = [f"203.0.113.{i}" for i in range(1, 21)]
    with server(baseline, rate_limit="5/second") as api:
        got = statuses(api, distinct)
        assert got.count(429) >= 14, got  # one client: the peer address
    with server(baseline, rate_limit="5/second", trusted_proxies="127.0.0.1") as api:
        assert statuses(api, distinct) == [200] * 20  # behind a trusted proxy each forwarded client counts
        assert statuses(api, ["198.51.100.7"] * 10).count(429) >= 4


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "1.2.3.4,,nope"])
def test_trusted_proxies_must_be_addresses(value: str):
    from pydantic import ValidationError

    from recsys.api.settings import ApiSettings

    with pytest.raises(ValidationError, match="trusted_proxies"):
        ApiSettings(trusted_proxies=value)


@pytest.mark.slow
def test_a_thousand_slow_sockets_at_default_settings(baseline: Published):
    """The defaults (10 s head deadline, 128 connections per address): other clients keep
    being served throughout, and every slow socket is gone by the deadline."""
    with server(baseline) as api, other_client(api) as other:
        opened = time.monotonic()
        slow = open_sockets(api.port, 500) + open_sockets(api.port, 500, HALF_SENT)
        try:
            while time.monotonic() - opened < 8:
                assert other.get("/users/17/recommendations").status_code == 200
                time.sleep(0.2)
            closed, _ = wait_closed(slow, since=opened, within_s=10 + SLACK_S + 5)
        finally:
            close_all(slow)
        assert len(closed) == len(slow)
        assert time.monotonic() - opened <= 10 + SLACK_S + 5
