"""The metric registry: every metric is one module of this package, declaring

- its **terms**: the accuracies it needs per round, each a (set, run protocol) pair that
  the planner turns into a cached run (`plan_terms`);
- its **score formula**: from one round's term accuracies to that round's quantities
  (`compute`), using `ddrank_steps.formulas`;
- its **quantities** summarised over rounds, the first being its **headline** (the
  leaderboard ranks by the headline of the highest-ranked metric a config computes);
- the **settings** it reads (besides `protocol` and `lr_rule`), shown on the leaderboard.

The config schema's metric blocks, the `metric` wildcard, the planner, the score stage
and the leaderboard all read this registry, so adding a metric is one module here
(with a `METRIC = Metric(...)`), its block in `workflow/schemas/config.schema.yaml`
and its row in `config/README.md`. Plain Python: the workflow imports it while it
builds the DAG.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    # (builder, request) -> {term: (SetId, run protocol)}: a planning.builder.PlanBuilder
    # and a MetricRequest; the builder plans each term (`arm`, `real_arm`)
    plan_terms: Callable
    # (term accuracies of one round, settings) -> that round's quantities
    compute: Callable[[dict[str, float], dict], dict[str, float]]
    quantities: tuple[str, ...]  # summarised over rounds; the first is the headline
    lr_term: str  # the syn term whose chosen LR the leaderboard lists
    settings: tuple[str, ...] = ()  # settings shown on the leaderboard
    rank: int = 100  # leaderboard order of metrics; lower ranks first
    # epochs between test evaluations when the protocol sets none: the reference's value
    # for this metric (and for its real-hard run)
    test_interval: int = 10
    doc: str = ""

    @property
    def headline(self) -> str:
        return self.quantities[0]


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (or replace one of the same name), keeping the registry in rank order."""
    METRICS[metric.name] = metric
    ordered = sorted(METRICS.values(), key=lambda m: (m.rank, m.name))
    METRICS.clear()
    METRICS.update((m.name, m) for m in ordered)
    return metric


def unregister(name: str) -> None:
    METRICS.pop(name, None)


def get(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"no metric '{name}' in the registry; known: {list(METRICS)}") from None


def names() -> list[str]:
    return list(METRICS)


def wildcard_pattern() -> str:
    """The `metric` wildcard's constraint: exactly the registered names."""
    return "|".join(sorted(METRICS, key=len, reverse=True))


def _register_builtin() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            register(module.METRIC)


_register_builtin()
