"""The score figures: a group's headline scores over rounds, and a score's terms side by
side with the differences it is made of.

Each function takes what the files hold (tolerating what older files lack) and returns a
matplotlib figure; what it cannot draw it says in the figure.
"""

from __future__ import annotations

import math

import numpy as np

from ddrank_steps.formulas import as_float
from ddrank_steps.reporting.figure_output import message, plt
from ddrank_steps.reporting.score_records import Group, Score
from ddrank_steps.reporting.standings import headline_mean, rank_group

# Terms in the order a reader compares them: real beside syn-hard (HLR), syn-any beside
# rdm-any (IOR); ARS's aug pair, then its naug pair. Others follow by name.
TERM_ORDER = (
    "real-hard",
    "syn-hard",
    "syn-any",
    "rdm-any",
    "syn-aug",
    "rdm-aug",
    "syn-naug",
    "rdm-naug",
)
SCALE_100 = ("lrs", "ars")  # quantities in [0, 100]; every other one is a fraction


def unit(quantity: str) -> str:
    return "[0, 100]" if quantity in SCALE_100 else "fraction"


def _rounds_scatter(ax, x: float, values: list[float], color) -> None:
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        offsets = np.linspace(-0.15, 0.15, len(finite)) if len(finite) > 1 else [0.0]
        ax.scatter(x + np.asarray(offsets), finite, s=12, color=color, zorder=3, alpha=0.8)


def group_scores(group: Group, scores: list[Score]):
    """Each method's headline mean ± std over rounds, the rounds as points, in rank order."""
    standings = rank_group(scores)
    headline = next((s.headline for s in scores if s.headline), None)
    if headline is None:
        return message(group.label, [f"metric '{group.metric}' is not in the registry"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(standings) + 1.5), 3.4))
    labels, notes = [], []
    for x, st in enumerate(standings):
        s = st.score
        mean = headline_mean(s)
        std = s.quantities.get(headline, {}).get("std", math.nan)
        values = list(s.headline_by_seed().values())
        if math.isfinite(mean):
            ax.errorbar(
                x,
                mean,
                yerr=std if math.isfinite(std) else None,
                fmt="o",
                color="C0",
                capsize=4,
                markersize=7,
                zorder=4,
            )
        else:
            notes.append(f"{s.method}: no finite {headline}")
        _rounds_scatter(ax, x, values, "C1")
        tie = f"\n(tied with {st.tied_text})" if st.tied_with else ""
        labels.append(f"#{st.rank} {s.method}{tie}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(f"{headline.upper()} ({unit(headline)})")
    rounds = max((len(st.score.rounds) for st in standings), default=0)
    ax.set_title(f"{group.label}: mean ± std over {rounds} round(s); dots: rounds", loc="left")
    if len(standings) == 1:
        notes.append("one method in this group: nothing to compare")
    if notes:
        ax.text(0, -0.32, "; ".join(notes), transform=ax.transAxes, fontsize=8, color="C3")
    fig.tight_layout()
    return fig


def ordered_terms(names) -> list[str]:
    known = [t for t in TERM_ORDER if t in names]
    return known + sorted(set(names) - set(known))


def score_terms(score: Score):
    """The term accuracies side by side, and the differences the score is made of."""
    title = f"{score.method} · {score.metric} ({score.group.label})"
    terms = ordered_terms(score.terms or {t for r in score.rounds for t in r.get("terms", {})})
    if not terms:
        return message(title, ["no term accuracies in the score file", *score.missing])
    parts = list(score.quantities)[1:]  # the headline's ingredients (HLR, IOR; gaps)
    ncols = 2 if parts else 1
    fig, axes = plt.subplots(
        1,
        ncols,
        figsize=(3.2 + 0.75 * len(terms) + (2.8 if parts else 0), 3.2),
        gridspec_kw={"width_ratios": [len(terms), max(len(parts), 1) + 0.5][:ncols]},
        squeeze=False,
    )
    _draw_terms(axes[0][0], score, terms)
    if parts:
        _draw_parts(axes[0][1], score, parts)
    head = score.quantities.get(score.headline) if score.headline else None
    if head:
        title += f": {score.headline.upper()} {head['mean']:.3g} ± {head['std']:.2g}"
    fig.suptitle(title, x=0.01, ha="left", fontsize=9)
    if score.missing:
        fig.text(0.01, -0.02, "missing: " + "; ".join(score.missing), fontsize=7, color="C3")
    fig.tight_layout()
    return fig


def _bar_with_rounds(ax, x: float, stats: dict, color, rounds: list[float]) -> None:
    """A bar at the mean with the std as error bar (where finite), the rounds as dots."""
    if math.isfinite(stats["mean"]):
        ax.bar(
            x,
            stats["mean"],
            color=color,
            alpha=0.6,
            yerr=stats["std"] if math.isfinite(stats["std"]) else None,
            capsize=3,
        )
    _rounds_scatter(ax, x, rounds, "black")


def _draw_terms(ax, score: Score, terms: list[str]) -> None:
    for x, term in enumerate(terms):
        stats = score.terms.get(term, {"mean": math.nan, "std": math.nan})
        color = "C2" if term.startswith("real") else "C0" if term.startswith("syn") else "C7"
        _bar_with_rounds(ax, x, stats, color, score.term_by_round(term))
    ax.set_xticks(range(len(terms)), terms, rotation=20)
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(0, 1.05)
    ax.set_title("terms: mean ± std, dots: rounds", loc="left", fontsize=8)


def _draw_parts(ax, score: Score, parts: list[str]) -> None:
    for x, q in enumerate(parts):
        rounds = [as_float(r.get(q)) for r in score.rounds]
        _bar_with_rounds(ax, x, score.quantities[q], "C4", rounds)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(parts)), [q.upper() if len(q) <= 3 else q for q in parts])
    ax.set_ylabel("difference (fraction)")
    ax.set_title("what the score is made of", loc="left", fontsize=8)
