"""Model quality benchmark: the published list and the rating against every baseline, one run.

    .venv/bin/python bench/model_quality.py                 # data from the feature store (DB)
    .venv/bin/python bench/model_quality.py --archive ../shared/data/ml-100k.zip
    .venv/bin/python bench/model_quality.py --folds         # also five-fold means of RMSE and Recall@10

Splits: u1 and a time-ordered split (the newest 10% of ratings as the test part), each
with every baseline, then the two cold-start protocols (50 movies, then 50 users of
u1.base held out entirely). Prints Markdown tables, writes them (plus JSON and PNG) to
--out, and checks the targets in the same run:
- the published ranking's Recall@10 and NDCG@10 (full catalogue) at least the best
  baseline's on u1 and on the time-ordered split; stretch Recall@10 >= 0.45 on u1;
- the same model's u1 RMSE <= 0.900 and below SVD++'s;
- cold start: RMSE on new movies and on new users below BaselineOnly's and SVD++'s; new
  movies reach the published list (Recall@10 on them above 0 and above popularity's),
  reported beside the content baseline's.
Hyperparameters were chosen on validation slices of training parts only; nothing here
looks at test data to choose anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RMSE_TARGET, RECALL_STRETCH = 0.900, 0.45
SPLITS = {"u1": "u1.base / u1.test", "temporal:0.1": "time-ordered: newest 10% of ratings as the test part"}
COLD = {
    "cold_movies:u1:50:42": "cold start: 50 movies of u1.base held out entirely",
    "cold_users:u1:50:42": "cold start: 50 users of u1.base held out entirely",
}
COLD_BASELINES = "global_mean,baseline_only,svdpp,popularity,content"
RATING_RIVALS = ("baseline_only", "svdpp")


def load(archive: str | None):
    if archive:
        from recsys.config import OFFICIAL_UDATA_SHA256
        from recsys.data.movielens import read_archive

        return read_archive(archive, OFFICIAL_UDATA_SHA256)
    from recsys.db.engine import database_url, make_engine
    from recsys.db.store import load_movielens

    return load_movielens(make_engine(database_url()))


def check_list(results, model: str) -> tuple[bool, str]:
    """The published ranking against the best baseline on Recall@10 and NDCG@10."""
    ours = next(r for r in results if r.method == model)
    rivals = [r for r in results if not r.method.startswith("tfrs") and r.topn]
    lines, ok = [], True
    for key in ("recall@10", "ndcg@10"):
        best = max(rivals, key=lambda r: r.topn[key])
        met = ours.topn[key] >= best.topn[key]
        ok &= met
        lines.append(f"{key} {ours.topn[key]:.4f} vs best baseline {best.label} {best.topn[key]:.4f}: "
                     f"{'MET' if met else 'NOT MET'}")  # fmt: skip
    return ok, "; ".join(lines)


def check_rating(results, model: str, rivals: tuple[str, ...], limit: float | None) -> tuple[bool, str]:
    by = {r.method: r for r in results}
    ours = by[model].rmse
    present = [by[n] for n in rivals if n in by and by[n].rmse is not None]
    ok = all(ours < r.rmse for r in present) and (limit is None or ours <= limit)
    against = ", ".join(f"{r.label} {r.rmse:.4f}" for r in present)
    return ok, f"RMSE {ours:.4f}{f' <= {limit}' if limit else ''} and below {against}: {'MET' if ok else 'NOT MET'}"


def check_cold_list(results, model: str) -> tuple[bool, str]:
    """New movies reach the published list: their Recall@10 above 0 and above popularity's (a chart of
    training counts, which never lists a new movie); printed as a share of the content baseline's."""
    by = {r.method: r for r in results}
    ours = by[model].topn["recall@10"]
    floor = by["popularity"].topn["recall@10"] if "popularity" in by else 0.0
    ok = ours > max(floor, 0.0)
    line = f"new movies in the list: Recall@10 {ours:.4f} > 0 and popularity's {floor:.4f}"
    if "content" in by and by["content"].topn.get("recall@10"):
        content = by["content"].topn["recall@10"]
        line += f" ({ours / content:.0%} of the content baseline's {content:.4f})"
    return ok, f"{line}: {'MET' if ok else 'NOT MET'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", help="read ML-100K from this zip instead of the database")
    parser.add_argument("--config", default="full")
    parser.add_argument("--baselines", default="all")
    parser.add_argument("--splits", default=",".join(SPLITS), help=f"which of {', '.join(SPLITS)} to run")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start protocols")
    parser.add_argument("--folds", action="store_true", help="also u2..u5 for five-fold means (the model and EASE)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args(argv)
    splits = args.splits.split(",")
    if unknown := sorted(set(splits) - set(SPLITS)):
        parser.error(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    if args.folds and "u1" not in splits:
        parser.error("--folds needs u1 in --splits")

    from recsys.model.baselines import parse_baselines
    from recsys.model.config import load_config
    from recsys.model.evaluate import evaluate_split, fold_means
    from recsys.model.report import markdown_table, write_report

    ml = load(args.archive)
    cfg = load_config(args.config)
    model = f"tfrs_{cfg.name}"
    started = time.perf_counter()
    verdicts: list[tuple[bool, str]] = []

    def show(r):
        rmse = f"{r.rmse:.4f}" if r.rmse is not None else "n/a"
        recall = f"{r.topn['recall@10']:.4f}" if r.topn else "n/a"
        print(f"  {r.method:<26} Recall@10 {recall}  RMSE {rmse}  ({r.fit_seconds:.1f}s)", flush=True)

    def run(spec: str, title: str, methods: list[str]):
        print(f"== {title}", flush=True)
        results = evaluate_split(ml, spec, methods, {model: cfg}, seed=cfg.seed, on_result=show)
        notes = ["Hyperparameters chosen on validation slices of the training part only; fit s = wall time."]
        name = spec.replace(":", "_")
        write_report(args.out, name, title, results, {"split": spec, "config": cfg.to_json()}, notes)
        print(markdown_table(results, title, notes), flush=True)
        return results

    per_split = {}
    for spec in splits:
        title = SPLITS[spec]
        results = per_split[spec] = run(spec, title, parse_baselines(args.baselines))
        verdicts.append(check_list(results, model))
        if spec == "u1":
            verdicts.append(check_rating(results, model, ("svdpp",), RMSE_TARGET))
            recall = next(r for r in results if r.method == model).topn["recall@10"]
            print(f"stretch Recall@10 >= {RECALL_STRETCH} on u1: {'met' if recall >= RECALL_STRETCH else 'not met'} "
                  f"({recall:.4f})")  # fmt: skip
    if not args.no_cold:
        for spec, title in COLD.items():
            results = run(spec, title, parse_baselines(COLD_BASELINES))
            verdicts.append(check_rating(results, model, RATING_RIVALS, None))
            if spec.startswith("cold_movies"):
                verdicts.append(check_cold_list(results, model))
    if args.folds:
        methods = parse_baselines("ease,svdpp")
        per_fold = {"u1": [r for r in per_split["u1"] if r.method in (*methods, model)]}
        for fold in ("u2", "u3", "u4", "u5"):
            print(f"== {fold}", flush=True)
            per_fold[fold] = evaluate_split(ml, fold, methods, {model: cfg}, seed=cfg.seed, on_result=show)
        means = fold_means(per_fold)
        write_report(
            args.out, "folds", "Mean over u1..u5", means, {"config": cfg.to_json()}, ["fit s = mean per fold."]
        )
        print(markdown_table(means, "Mean over u1..u5", ["fit s = mean per fold."]))
    print("\n== targets (measured in this run)")
    for ok, line in verdicts:
        print(f"  [{'x' if ok else ' '}] {line}")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f}s; reports in {args.out}")
    return 0 if all(ok for ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
