"""``recsys serve``: run the lookup API under uvicorn (hooked into recsys/cli.py).

Also runnable on its own: ``python -m recsys.api.commands serve --port 8000``.

The event loop and HTTP parser are named, not ``auto``: uvloop and httptools are direct
dependencies, and ``auto`` would fall back silently to asyncio and h11 (pure Python) in an
install that lacks them. Measured here (2 workers, top-10 lookups, before the other
optimisations): asyncio + h11 cost 1.7-2.7 ms of API CPU per request against 1.0-1.1 ms
with uvloop + httptools, and gave a 44 ms p50 at one client (22 req/s), where h11's
separate header and body writes meet delayed ACKs; uvloop + httptools: 1.9 ms, 416 req/s.
The HTTP protocol is httptools' with connection guards (``recsys.api.server``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve the lookup API (FastAPI under uvicorn)")
    serve.add_argument(
        "--host", default=os.environ.get("RECSYS_API_HOST", "127.0.0.1"), help="address to listen on (RECSYS_API_HOST)"
    )
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("RECSYS_API_PORT", "8000")), help="port (RECSYS_API_PORT)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("RECSYS_API_WORKERS", "1")),
        help="worker processes (one per core is a good start)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from recsys.api.settings import get_api_settings
    from recsys.errors import ConfigError

    try:
        settings = get_api_settings()  # a bad RECSYS_API_* value fails here, once, not in every worker
    except ValidationError as exc:
        raise ConfigError(f"invalid RECSYS_API_* setting: {exc}") from exc
    from recsys.api.server import uvicorn_options

    uvicorn.run(
        "recsys.api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=10,
        **uvicorn_options(settings),  # httptools with head/body deadlines, per-client cap, JSON 503 past the limit
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from recsys.errors import RecsysError

    parser = argparse.ArgumentParser(prog="python -m recsys.api.commands")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except RecsysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
