"""Write a comparison as Markdown, JSON and a PNG chart into a reports directory.

Markdown is for people (and pasting into issues), JSON for machines and later
comparisons, the chart for a glance; all three come from the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.model import topn
from recsys.model.evaluate import PROTOCOL, MethodResult

# (column title, key in MethodResult.topn); the list a user gets comes first
TOPN_COLUMNS = (
    ("Recall@10", "recall@10"),
    ("NDCG@10", "ndcg@10"),
    ("HR@10", "hr@10"),
    ("Recall@50", "recall@50"),
    ("NDCG@50", "ndcg@50"),
    ("coverage@10", "coverage@10"),
    ("novelty@10", "novelty@10"),
)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _bold_best(values: list[float | None], higher: bool) -> list[str]:
    finite = [v for v in values if v is not None and v == v]
    best = (max if higher else min)(finite, default=None)
    return [f"**{_fmt(v)}**" if v is not None and v == best else _fmt(v) for v in values]


def markdown_table(results: list[MethodResult], title: str, notes: list[str] | None = None) -> str:
    columns: dict[str, list[str]] = {}
    for name, key in TOPN_COLUMNS:
        values = [r.topn.get(key) for r in results]
        columns[name] = (
            _bold_best(values, higher=True) if key.startswith(("recall", "ndcg", "hr")) else [_fmt(v) for v in values]
        )
    columns["RMSE"] = _bold_best([r.rmse for r in results], higher=False)
    columns["MAE"] = [_fmt(r.mae) for r in results]
    columns["test-item NDCG@10"] = [_fmt(r.ndcg) for r in results]
    columns["fit s"] = [f"{r.fit_seconds:.1f}" for r in results]
    header = ["method", *columns]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * len(columns)]
    for i, r in enumerate(results):
        lines.append("| " + " | ".join([r.label, *(col[i] for col in columns.values())]) + " |")
    users = next((int(r.topn["topn_users"]) for r in results if r.topn.get("topn_users")), None)
    lines += ["", f"Protocol (top-N, {users} users): {topn.PROTOCOL}", "", f"Protocol (ratings): {PROTOCOL}"]
    lines += [f"{n}" for n in notes or []]
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: Path | str,
    name: str,
    title: str,
    results: list[MethodResult],
    extra: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """``<out>/<name>.md``, ``.json`` and ``.png``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{name}.md", "json": out / f"{name}.json", "plot": out / f"{name}.png"}
    paths["markdown"].write_text(markdown_table(results, title, notes), encoding="utf-8")
    payload = {
        "title": title,
        "protocol": {"topn": topn.PROTOCOL, "ratings": PROTOCOL},
        "results": [r.to_json() for r in results],
        **(extra or {}),
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    plot(results, title, paths["plot"])
    return paths


def plot(results: list[MethodResult], title: str, path: Path) -> None:
    """Recall@10 (the list) and RMSE (the rating) side by side, both axes from zero, values on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.label for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.42 * len(results) + 2.0), sharey=True)
    panels = (
        (ax1, [r.topn.get("recall@10") for r in results], "Recall@10, full catalogue (higher is better)"),
        (ax2, [r.rmse for r in results], "RMSE on the test ratings (lower is better)"),
    )
    for ax, values, xlabel in panels:
        shown = [v if v is not None and v == v else 0.0 for v in values]
        colors = ["tab:orange" if r.method.startswith("tfrs") else "tab:blue" for r in results]
        bars = ax.barh(labels, shown, color=colors)
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None or value != value else f"{value:.3f}"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {text}", va="center", fontsize=8)
        top = max(shown, default=1.0) or 1.0
        ax.set_xlim(0, top * 1.18)
        ax.set_xlabel(xlabel)
    ax1.invert_yaxis()
    ax1.legend(
        handles=[
            matplotlib.patches.Patch(color="tab:orange", label="TFRS models"),
            matplotlib.patches.Patch(color="tab:blue", label="baselines"),
        ],
        loc="lower right",
        fontsize=8,
    )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
