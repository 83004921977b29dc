"""``recsys train`` and ``recsys evaluate``: argument parsing around the model library.

Handlers take the parsed arguments and return an exit code; user errors are raised as
``RecsysError`` for the CLI to print. TensorFlow is imported inside the handlers, so
merely building the parser (``recsys --help``) stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys.config import DEFAULT_TRAIN_SPLIT
from recsys.model.config import PRESETS
from recsys.native_log import start_tensorflow

DEFAULT_HOLDOUT = DEFAULT_TRAIN_SPLIT  # a weekly job predicts next week: hold out the newest ratings


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train the ranking model, export it and register it (with the promotion gate)"
    )
    train.add_argument(
        "--split",
        default=DEFAULT_HOLDOUT,
        help="the holdout the gate judges: u1..u5, ua, ub, random:F:SEED, temporal:F (newest share of ratings), "
        "files:TRAIN,TEST (default: %(default)s)",
    )
    train.add_argument("--config", default="full", help=f"preset ({', '.join(PRESETS)}) or a JSON/YAML file")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--tolerance", type=float, default=0.0, help="RMSE slack allowed vs. the champion")
    train.add_argument(
        "--recall-tolerance", type=float, default=0.0, help="full-catalogue Recall@10 slack allowed vs. the champion"
    )
    train.add_argument("--no-promote", action="store_true", help="register as challenger, never champion")
    train.add_argument(
        "--no-refit", action="store_true", help="serve the holdout model itself instead of a refit on every rating"
    )
    train.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(handler=train_command)

    evaluate = subparsers.add_parser(
        "evaluate", help="compare the model with baselines on one split (or five folds): table, JSON, plot"
    )
    evaluate.add_argument(
        "--split",
        help="u1..u5, ua, ub, random:F:SEED, temporal:F, cold_movies:BASE, cold_users:BASE, files:TRAIN,TEST "
        "(default: the data set's first own split, ML-100K's u1; random:0.2:42 for one without)",
    )
    evaluate.add_argument("--config", default="full", help="the TFRS config to evaluate (preset or file)")
    evaluate.add_argument("--seed", type=int, help="override the config's and baselines' seed")
    evaluate.add_argument(
        "--baselines", default="all", help="all, none, or a comma list of: " + ", ".join(_baseline_names())
    )
    evaluate.add_argument("--out", type=Path, default=Path("reports"), help="reports directory")
    evaluate.add_argument(
        "--folds",
        action="store_true",
        help="run the data set's own folds (ML-100K: u1..u5) and report the means (ignores --split)",
    )
    evaluate.set_defaults(handler=evaluate_command)


def _baseline_names() -> tuple[str, ...]:
    from recsys.model.baselines import all_baselines

    return all_baselines()


def _load_data():
    from recsys.db.engine import check_connection, database_url, make_engine
    from recsys.db.store import load_movielens

    engine = make_engine(database_url())
    check_connection(engine)
    return engine, load_movielens(engine)


def train_command(args: argparse.Namespace) -> int:
    start_tensorflow()
    from recsys.config import get_settings
    from recsys.model.config import load_config
    from recsys.model.pipeline import train_and_register
    from recsys.model.registry import Gate

    gate = Gate(args.tolerance, args.recall_tolerance)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    cfg = load_config(args.config, **overrides)
    engine, ml = _load_data()
    result = train_and_register(
        ml,
        args.split,
        cfg,
        engine,
        get_settings().artifacts_path,
        gate=gate,
        promote=not args.no_promote,
        refit=not args.no_refit,
        verbose=0 if args.quiet else 2,
    )
    m = result.metrics
    print(
        f"model {result.version_id} ({cfg.name}) trained on the training part of {args.split} in {m['train_seconds']:.0f}s"
    )
    print(f"  holdout: Recall@10 {m['recall@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}  HR@10 {m['hr@10']:.4f}"
          f"  coverage {m['coverage@10']:.3f} (full catalogue, {m['topn_users']} users)")  # fmt: skip
    print(f"           RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}"
          f"  (validation RMSE {m['validation_rmse'] or float('nan'):.4f}, best epochs {m['member_epochs']},"
          f" list head {m['retrieval_epochs']})")  # fmt: skip
    print("  hyperparameters: chosen on a validation slice of the training part only (docs/MODEL.md)")
    refit = m.get("refit")
    if refit:
        print(f"  served: refit on all {refit['ratings']} ratings in {refit['train_seconds']:.0f}s (same epochs)")
    else:
        print("  served: the holdout model itself (no refit: it was not going to be promoted, or --no-refit)")
    print(f"  artifact: {result.artifact}")
    print(f"  registry: {result.decision.status} - {result.decision.reason}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    start_tensorflow()
    from recsys.data.splits import make_split
    from recsys.model.baselines import parse_baselines
    from recsys.model.config import load_config
    from recsys.model.evaluate import evaluate_split, fold_means
    from recsys.model.report import markdown_table, write_report

    methods = parse_baselines(args.baselines)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    cfg = load_config(args.config, **overrides)
    seed = cfg.seed
    _, ml = _load_data()
    splits = _folds(ml.dataset) if args.folds else [args.split or _default_split(ml.dataset)]
    per_split = {}
    for spec in splits:
        print(f"== {spec}: fitting {len(methods)} baseline(s) and TFRS {cfg.name} ...", flush=True)
        split = make_split(spec, ml.ratings, ml.split_tests, ml.scale)
        results = evaluate_split(
            ml, split, methods, {f"tfrs_{cfg.name}": cfg}, seed=seed,
            on_result=lambda r: print(f"   {r.method:<26} Recall@10 {r.topn.get('recall@10', float('nan')):.4f}"
                                      f"  RMSE {r.rmse if r.rmse is not None else float('nan'):.4f}"
                                      f"  ({r.fit_seconds:.1f}s)", flush=True),
        )  # fmt: skip
        per_split[spec] = results
        notes = [f"Split {spec}; hyperparameters chosen on validation slices of the training part only."]
        paths = write_report(args.out, f"evaluate-{_safe(spec)}", f"Comparison on {spec}", results,
                             {"split": spec, **_split_facts(ml, split, results), "config": cfg.to_json()},
                             notes)  # fmt: skip
        print(markdown_table(results, f"Comparison on {spec}", notes))
        print(f"written: {', '.join(str(p) for p in paths.values())}")
    if len(splits) > 1:
        means = fold_means(per_split)
        title = f"Mean over folds {', '.join(splits)}"
        notes = ["fit s = mean per fold."]
        extra = {"folds": {s: [r.to_json() for r in rs] for s, rs in per_split.items()}, "config": cfg.to_json()}
        paths = write_report(args.out, "evaluate-folds", title, means, extra, notes)
        print(markdown_table(means, title, notes))
        print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


def _default_split(dataset: str) -> str:
    from recsys.data.adapters import adapter

    return next(iter(adapter(dataset).native_splits), "random:0.2:42")


def _folds(dataset: str) -> list[str]:
    """The loaded data set's own disjoint folds (its adapter knows them: ML-100K's u1-u5)."""
    from recsys.data.adapters import adapter
    from recsys.errors import ConfigError

    folds = list(adapter(dataset).folds)
    if not folds:
        raise ConfigError(
            f"--folds: the loaded data set ({dataset}) has no folds of its own; use --split random:F:SEED"
        )
    return folds


def _split_facts(ml, split, results) -> dict:
    """What a reader of the JSON needs to tell two reports apart: the data and the sizes measured."""
    ranked = [r.topn["topn_users"] for r in results if r.topn]
    return {
        "data_fingerprint": ml.fingerprint,
        "train_ratings": len(split.train),
        "test_ratings": len(split.test),
        "ranking_users": ranked[0] if ranked else 0,
    }


def _safe(spec: str) -> str:
    """A file name for a split spec; a long one keeps a digest of the whole spec, so two never collide."""
    import hashlib

    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
    return name if len(name) <= 80 else f"{name[:63]}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
