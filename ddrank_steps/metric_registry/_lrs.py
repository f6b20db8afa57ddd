"""What LRS-hard and LRS-soft share: the per-round score from their four terms
(real-hard, syn-hard, syn-any, rdm-any); they differ in how they plan them."""

from __future__ import annotations

from collections.abc import Callable

from ddrank_steps import formulas
from ddrank_steps.metric_registry import Metric


def compute(acc: dict[str, float], settings: dict) -> dict[str, float]:
    """HLR from the hard terms, IOR under the method's own recipe, LRS from both."""
    hlr = formulas.hlr(acc["real-hard"], acc["syn-hard"])
    ior = formulas.ior(acc["syn-any"], acc["rdm-any"])
    alpha = formulas.lrs_alpha(hlr, ior, settings["weight"])
    return {"hlr": hlr, "ior": ior, "alpha": alpha, "lrs": formulas.normalise(alpha)}


def lrs_metric(name: str, plan_terms: Callable, rank: int, doc: str, test_interval: int) -> Metric:
    return Metric(
        name=name,
        plan_terms=plan_terms,
        compute=compute,
        quantities=("lrs", "hlr", "ior"),
        lr_term="syn-any",
        settings=("weight",),
        rank=rank,
        doc=doc,
        test_interval=test_interval,
    )
