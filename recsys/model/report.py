"""Write a comparison as Markdown, JSON and a PNG chart into a reports directory.

Markdown is for people (and pasting into issues), JSON for machines and later
comparisons, the chart for a glance; all three come from the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.model.evaluate import PROTOCOL, MethodResult


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(results: list[MethodResult], title: str, notes: list[str] | None = None) -> str:
    best = min((r.rmse for r in results if r.rmse is not None), default=None)
    lines = [
        f"### {title}",
        "",
        "| method | RMSE | MAE | NDCG@10 | P@10 | R@10 | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rmse = _fmt(r.rmse)
        if r.rmse is not None and r.rmse == best:
            rmse = f"**{rmse}**"
        lines.append(
            f"| {r.label} | {rmse} | {_fmt(r.mae)} | {_fmt(r.ndcg)} | {_fmt(r.precision)} "
            f"| {_fmt(r.recall)} | {r.fit_seconds:.1f} |"
        )
    lines += ["", f"Protocol: {PROTOCOL}"]
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
    payload = {"title": title, "protocol": PROTOCOL, "results": [r.to_json() for r in results], **(extra or {})}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    plot(results, title, paths["plot"])
    return paths


def plot(results: list[MethodResult], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.method for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(results) + 1.8), sharey=True)
    rmse = [r.rmse if r.rmse is not None else 0.0 for r in results]
    ax1.barh(labels, rmse, color=["tab:orange" if m.startswith("tfrs") else "tab:blue" for m in labels])
    finite = [v for v in rmse if v > 0]
    if finite:
        ax1.set_xlim(min(finite) - 0.05, min(max(finite) + 0.02, 1.6))
    ax1.set_xlabel("RMSE (lower is better; n/a = 0)")
    ax1.invert_yaxis()
    ax2.barh(labels, [r.ndcg for r in results], color="tab:green")
    ax2.set_xlabel("NDCG@10 over each user's test movies (higher is better)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
