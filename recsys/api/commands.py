"""``recsys serve``: run the lookup API under uvicorn (hooked into recsys/cli.py).

Also runnable on its own: ``python -m recsys.api.commands serve --port 8000``.

The event loop and HTTP parser are named, not ``auto``: uvloop and httptools are direct
dependencies, and ``auto`` would fall back silently to asyncio and h11 (pure Python, and
much slower per request: docs/API.md, "Design notes") in an install that lacks them.
The HTTP protocol is httptools' with connection guards (``recsys.api.server``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve_defaults():
    """``--host``/``--port``/``--workers`` defaults from ``RECSYS_API_HOST``/``_PORT``/``_WORKERS``.

    Read when the parser is built, for every ``recsys`` command: a bad value must not break
    ``recsys ingest``, so it falls back to the fields' defaults here and ``serve`` refuses it
    (``get_api_settings`` validates the same fields) with one line.
    """
    from pydantic import ValidationError

    from recsys.api.settings import ServeSettings

    try:
        return ServeSettings()
    except ValidationError:
        return ServeSettings.model_construct()


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = _serve_defaults()
    serve = subparsers.add_parser("serve", help="serve the lookup API (FastAPI under uvicorn)")
    serve.add_argument("--host", default=defaults.host, help="address to listen on (RECSYS_API_HOST)")
    serve.add_argument("--port", type=int, default=defaults.port, help="port (RECSYS_API_PORT)")
    serve.add_argument(
        "--workers", type=int, default=defaults.workers, help="worker processes (one per core is a good start)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from recsys.api.settings import get_api_settings

    settings = get_api_settings()  # a bad RECSYS_API_* value fails here (ConfigError), once, not in every worker
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
