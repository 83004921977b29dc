"""``recsys precompute``: the nightly job from the command line."""

from __future__ import annotations

import argparse

from recsys.errors import ConfigError

# The one default for the shard count: also RECSYS_PRECOMPUTE_SHARDS's (recsys.config.AirflowSettings),
# which the precompute DAG reads; tests/cli/test_cli.py checks the two agree.
DEFAULT_SHARDS = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "precompute", help="score every user x movie pair with the champion and publish the ranking atomically"
    )
    cmd.add_argument("--shards", type=int, default=DEFAULT_SHARDS, help="shards (users split by user_id %% shards)")
    cmd.add_argument("--workers", type=int, default=2, help="shards written in parallel while the next is scored")
    cmd.add_argument("--keep", type=int, default=2, help="superseded rankings to keep besides the published one")
    cmd.add_argument("--model-version", help="score with this registered model instead of the champion")
    cmd.set_defaults(handler=precompute_command)


def precompute_command(args: argparse.Namespace) -> int:
    from recsys.db.engine import check_connection, database_url, make_engine
    from recsys.native_log import start_tensorflow
    from recsys.scoring.precompute import precompute

    start_tensorflow()
    if args.shards < 1 or args.workers < 1 or args.keep < 0:
        raise ConfigError("--shards and --workers must be >= 1 and --keep >= 0")
    engine = make_engine(database_url())
    check_connection(engine)
    result = precompute(
        engine, shards=args.shards, workers=args.workers, keep=args.keep, model_version=args.model_version
    )
    print(
        f"published run {result.run_id}: {result.rows:,} pairs scored with model {result.model_version} "
        f"in {result.seconds:.1f} s: {result.load_seconds:.1f} s loading and warming up the model, then "
        f"{result.pairs_per_second:,.0f} pairs/s scoring, writing and publishing"
    )
    return 0
