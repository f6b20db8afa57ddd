"""Accuracy: the plain test accuracy of the syn set under a protocol (the reference's
GeneralEvaluator). One term, syn-any."""

from __future__ import annotations

from ddrank_steps.metric_registry import Metric


def plan_terms(builder, request) -> dict:
    return {"syn-any": builder.arm(request, request.protocol, "syn")}


def compute(acc: dict[str, float], settings: dict) -> dict[str, float]:
    return {"acc": acc["syn-any"]}


METRIC = Metric(
    name="accuracy",
    plan_terms=plan_terms,
    compute=compute,
    quantities=("acc",),
    lr_term="syn-any",
    rank=3,
    doc=__doc__,
)
