"""Hyperparameter search on a validation slice of a split's training part (never its test part).

    .venv/bin/python bench/model_tune.py --archive ../shared/data/ml-100k.zip \
        '{"bag_ratings": true}' '{"dropout": 0.3}' ...

Each argument is a JSON object of overrides on the base preset; every candidate is
trained on u1.base minus the validation slice and scored on that slice only, and the
lines are appended to --log so the choice behind the ``full`` preset is on record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="*", default=["{}"], help="JSON overrides, one per candidate")
    parser.add_argument("--archive", help="read ML-100K from this zip instead of the database")
    parser.add_argument("--split", default="u1")
    parser.add_argument("--base", default="full")
    parser.add_argument("--log", type=Path, default=Path("reports/tuning.jsonl"))
    args = parser.parse_args(argv)

    from model_quality import load
    from recsys.data.splits import Split, make_split
    from recsys.model.config import preset
    from recsys.model.train import train

    ml = load(args.archive)
    split = make_split(args.split, ml.ratings, ml.split_tests, ml.scale)
    train_only = Split(split.name, split.train, split.test.iloc[:0])  # the test part is not even passed on
    args.log.parent.mkdir(parents=True, exist_ok=True)
    for text in args.candidates:
        overrides = json.loads(text)
        cfg = preset(args.base, **overrides)
        trained = train(ml, train_only, cfg, verbose=0)
        row = {
            "split": args.split,
            "base": args.base,
            "overrides": overrides,
            "validation_rmse": round(trained.validation["rmse"], 5),
            "best_epoch": trained.best_epoch,
            "seconds": round(trained.train_seconds, 1),
        }
        print(json.dumps(row), flush=True)
        with args.log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
