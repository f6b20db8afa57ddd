"""The figure of a training run: test accuracy against epoch for every LR of its grid, the
selected point starred. Reads only the run file, so the run figures depend on no score or
leaderboard code.
"""

from __future__ import annotations

import math

from ddrank_steps import paths
from ddrank_steps.formulas import as_float
from ddrank_steps.reporting.figure_output import message, plt


def run_curves(run: dict, run_path: str):
    """Test accuracy against epoch for every LR the run trained, the selected point
    starred; a non-finite accuracy (a diverged LR) is said in the legend."""
    runs = [r for r in run.get("runs") or [] if isinstance(r, dict)]
    where = paths.run_fields(run_path)
    title = (
        f"{where['dataset']} · {where['set']} · protocol {where['protocol']} · seed {where['seed']}"
    )
    if not any(r.get("curve") for r in runs):
        return message(title, [f"{run_path}: no per-LR curves ('runs[].curve')"])
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for i, r in enumerate(sorted(runs, key=lambda r: as_float(r.get("lr")))):
        curve = r.get("curve") or []
        epochs = [as_float(p.get("epoch")) for p in curve]
        test = [as_float(p.get("test")) for p in curve]
        label = f"lr {r.get('lr', '?'):g}" if isinstance(r.get("lr"), int | float) else "lr ?"
        if any(not math.isfinite(v) for v in test):
            label += " (diverged: NaN)"
        ax.plot(epochs, test, marker="o", markersize=3, color=f"C{i % 10}", label=label)
    selected = run.get("selected") or {}
    if all(isinstance(selected.get(k), int | float) for k in ("epoch", "acc")):
        ax.scatter(
            [selected["epoch"]],
            [selected["acc"]],
            marker="*",
            s=160,
            color="black",
            zorder=5,
            label=f"selected ({run.get('select', 'best')})",
        )
        title += (
            f"\nselected: lr {selected.get('lr', '?')}, epoch {selected['epoch']},"
            f" acc {selected['acc']:.3f}"
        )
    else:
        title += "\nno selected point in the run file"
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, loc="left", fontsize=8)
    fig.tight_layout()
    return fig
