"""LRS-soft: the Label-Robust Score under the method's soft-label recipe.

Terms: real-hard and syn-hard as LRS-hard (syn-hard without the batch augmentation unless
`use_aug_for_hard`, but with the protocol's train_transforms, which are preprocessing as in
the reference's image-folder path; and, as the reference, searching the LR grid even when the method
brings its own LR); syn-any and rdm-any under the soft-label protocol, so knowledge
distillation lifts the random baseline as much as the method.
"""

from __future__ import annotations

from ddrank_steps.errors import ConfigError
from ddrank_steps.metric_registry._lrs import lrs_metric
from ddrank_steps.metric_registry._variants import hard_version


def plan_terms(builder, request) -> dict:
    protocol = request.protocol
    if protocol["labels"] != "soft":
        raise ConfigError("LRS-soft needs a protocol with labels: soft")
    hard = hard_version(protocol, keep_augmentation=request.settings["use_aug_for_hard"])
    return {
        "real-hard": builder.real_arm(request),
        "syn-hard": builder.arm(request, hard, "syn", own_lr=False),
        "syn-any": builder.arm(request, protocol, "syn"),
        "rdm-any": builder.arm(request, protocol, "rdm"),
    }


METRIC = lrs_metric("lrs_soft", plan_terms, rank=1, doc=__doc__, test_interval=20)
