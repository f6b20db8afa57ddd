"""Ranking within a leaderboard group, with a paired comparison of each adjacent pair.

Methods are ordered by the mean of the metric's headline quantity over rounds (highest
first; a method without a finite mean last; the method name breaks exact ties). Ranks are
positions 1..n; where the rounds do not separate #k from #k+1 (see `ddrank_steps.reporting.paired`)
both say they are tied with the other.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from ddrank_steps import metric_registry
from ddrank_steps.reporting.paired import PairedComparison, compare
from ddrank_steps.reporting.score_records import Group, Score


@dataclass
class Standing:
    score: Score
    rank: int
    tied_with: list[int] = field(default_factory=list)  # adjacent ranks not separated
    vs_next: PairedComparison | None = None  # against rank + 1 (None for the last)

    @property
    def tied_text(self) -> str:
        return "; ".join(f"#{k}" for k in self.tied_with)


def headline_mean(score: Score) -> float:
    stats = score.quantities.get(score.headline) if score.headline else None
    return stats["mean"] if stats else math.nan


def rank_group(scores: list[Score]) -> list[Standing]:
    """The group's methods in rank order, each compared with the next."""

    def key(score: Score):
        mean = headline_mean(score)
        return (0, -mean, score.method) if math.isfinite(mean) else (1, 0.0, score.method)

    ordered = sorted(scores, key=key)
    standings = [Standing(score, rank) for rank, score in enumerate(ordered, 1)]
    for upper, lower in itertools.pairwise(standings):
        upper.vs_next = compare(upper.score.headline_by_seed(), lower.score.headline_by_seed())
        if not upper.vs_next.separated:
            upper.tied_with.append(lower.rank)
            lower.tied_with.insert(0, upper.rank)
    return standings


def rank_groups(scores: list[Score]) -> dict[Group, list[Standing]]:
    """Every group of the scores, ranked, in group order (dataset, IPC, metric, protocol)."""
    groups: dict[Group, list[Score]] = {}
    for score in scores:
        groups.setdefault(score.group, []).append(score)
    return {g: rank_group(groups[g]) for g in sorted(groups, key=_group_order)}


def _group_order(group: Group):
    metrics = list(metric_registry.METRICS)  # registry order: LRS-hard first
    metric_rank = metrics.index(group.metric) if group.metric in metrics else len(metrics)
    return (group.dataset, group.ipc, metric_rank, group.metric, group.protocol)
