"""LRS-hard: the Label-Robust Score of a set trained with hard labels.

Terms: real-hard (the model on the full train split), syn-hard = syn-any (the set under
the protocol, whose recipe is hard labels), rdm-any (a random real subset of the same IPC,
trained the same way). HLR = real-hard − syn-hard, IOR = syn-any − rdm-any,
LRS = normalise(w·IOR − (1 − w)·HLR).
"""

from __future__ import annotations

from ddrank_steps.errors import ConfigError
from ddrank_steps.metric_registry._lrs import lrs_metric


def plan_terms(builder, request) -> dict:
    if request.protocol["labels"] != "hard":
        raise ConfigError("LRS-hard needs a protocol with labels: hard")
    syn = builder.arm(request, request.protocol, "syn")
    # LRS-hard's own recipe is hard labels, so syn-any is the syn-hard run
    return {
        "real-hard": builder.real_arm(request),
        "syn-hard": syn,
        "syn-any": syn,
        "rdm-any": builder.arm(request, request.protocol, "rdm"),
    }


METRIC = lrs_metric("lrs_hard", plan_terms, rank=0, doc=__doc__, test_interval=10)
