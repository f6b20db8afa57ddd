"""ARS: the Augmentation-Robust Score.

Terms: syn and rdm, each with the protocol's augmentation (aug) and without any training
augmentation (naug: no batch augmentation, no train_transforms, everything else the same).
β = γ·(syn-aug − rdm-aug) + (1 − γ)·(syn-naug − rdm-naug), ARS = normalise(β).
With `label_type: hard` the soft-label protocol trains with hard labels instead.
"""

from __future__ import annotations

from ddrank_steps import formulas
from ddrank_steps.errors import ConfigError
from ddrank_steps.metric_registry import Metric
from ddrank_steps.metric_registry._variants import hard_version, naug_version


def plan_terms(builder, request) -> dict:
    protocol, label_type = request.protocol, request.settings["label_type"]
    if label_type == "soft" and protocol["labels"] != "soft":
        raise ConfigError("ARS with label_type soft needs a protocol with labels: soft")
    aug = protocol if label_type == "soft" else hard_version(protocol, True)
    if aug.get("augmentation", "none") == "none" and not aug.get("train_transforms"):
        raise ConfigError(
            "ARS compares runs with and without augmentation; set an augmentation "
            "or train_transforms"
        )
    naug = naug_version(aug)
    return {
        "syn-aug": builder.arm(request, aug, "syn"),
        "rdm-aug": builder.arm(request, aug, "rdm"),
        "syn-naug": builder.arm(request, naug, "syn"),
        "rdm-naug": builder.arm(request, naug, "rdm"),
    }


def compute(acc: dict[str, float], settings: dict) -> dict[str, float]:
    beta = formulas.ars_beta(
        acc["syn-aug"], acc["rdm-aug"], acc["syn-naug"], acc["rdm-naug"], settings["gamma"]
    )
    return {
        "with_aug": acc["syn-aug"] - acc["rdm-aug"],
        "without_aug": acc["syn-naug"] - acc["rdm-naug"],
        "beta": beta,
        "ars": formulas.normalise(beta),
    }


METRIC = Metric(
    name="ars",
    plan_terms=plan_terms,
    compute=compute,
    quantities=("ars", "with_aug", "without_aug"),
    lr_term="syn-aug",
    settings=("gamma", "label_type"),
    rank=2,
    doc=__doc__,
    test_interval=20,
)
