"""Cache keys: the canonical run protocol of a run, its key and its result file.

A run's result depends on its set, its *run protocol*, its seed and the dataset; its path
`results/runs/{dataset}/{set}/{key}/seed{seed}.json` holds exactly those (`run_file`). The
key is a short hash of the canonical run protocol (`protocol_key`): the protocol with the
LR resolved (a grid, a fixed LR, or the method's own LR stored in its set) and with
nothing that does not change the run (not its name, not the metric's weight). So two
metrics or methods that need the same run share one file, and editing one protocol only
changes the keys that depend on it.

Every key a result file was ever written under must stay what it is: a change here
that moves a key retrains every run under it (tests/test_cache_keys.py pins them).

Plain Python, no torch at import: the workflow reads these while it builds the DAG.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

from ddrank_steps import metric_registry, paths
from ddrank_steps.errors import ConfigError
from ddrank_steps.models import canonical_model_name, canonical_options
from ddrank_steps.protocol_defaults import UNNAMED_PRECISION, UNNAMED_SELECT, precision_of

KEY_LENGTH = 10

# Keys of a protocol that decide how a run trains (and so enter its cache key).
TRAINING_KEYS = (
    "model",
    "model_options",
    "labels",
    "augmentation",
    "aug_params",
    "optimizer",
    "momentum",
    "weight_decay",
    "scheduler",
    "step_size",
    "gamma",
    "epochs",
    "batch_size",
    "test_interval",
    "select",
    "train_transforms",
    "test_transforms",
    "processes",
    "precision",
    "divergence",
)
# Optional lists (see transforms.batches): in a run protocol only when given, so a protocol
# without them keeps the key it had before they existed.
TRANSFORM_KEYS = ("train_transforms", "test_transforms")

# Where a run's training targets come from, decided by the planner (builder's
# `add_label_recipe`) and carried in the run protocol, so the rules, the train stage and
# the engine read it instead of working it out again:
#   none            hard labels
#   teachers        mode M: the teachers relabel every (augmented) batch
#   teacher_logits  mode S: one stored teacher label per image, made by the soft_labels stage
#   set             mode S: the syn set's own soft labels
LABEL_SOURCES = ("none", "teachers", "teacher_logits", "set")
# Left out of the cache key: the label source follows from `labels`, `soft_label_mode`
# and `soft_source`, which the key holds, and leaving it out keeps the keys of runs made
# before it was carried.
NOT_IN_KEY = ("label_source",)


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def protocol_key(run_protocol: dict) -> str:
    keyed = {k: v for k, v in run_protocol.items() if k not in NOT_IN_KEY}
    return hashlib.sha256(canonical_json(keyed).encode()).hexdigest()[:KEY_LENGTH]


def teachers_key(teachers: list[dict]) -> str:
    """The cache key of a teacher ensemble (mode-S soft labels are keyed by it)."""
    return protocol_key({"teachers": teachers})


def canonicalise(run: dict) -> None:
    """One spelling per training: model options and augmentation parameters with every
    default filled in and the reference's names turned into ours, numbers as floats or
    ints, so two spellings of one run share its key (and a default that changes in the
    code changes the key). A selection or test interval the planner has not resolved is
    its bug, not the config's."""
    from ddrank_steps.augment import canonical_augmentation

    for key in ("select", "test_interval"):
        if run.get(key) is None:
            raise ValueError(f"run protocol without {key}: resolve_protocol sets it")
    run["model_options"] = canonical_options(run["model"], run.get("model_options"))
    run["model"] = canonical_model_name(run["model"])  # `resnet18` is `torchvision:resnet18`
    run["augmentation"], run["aug_params"] = canonical_augmentation(
        run.get("augmentation"), run.get("aug_params")
    )
    for key in ("weight_decay", "gamma"):
        if run.get(key) is not None:
            run[key] = float(run[key])
    momentum = run.get("momentum")
    if momentum is not None:
        run["momentum"] = (
            [float(m) for m in momentum] if isinstance(momentum, list) else float(momentum)
        )
    for key in ("epochs", "batch_size", "test_interval", "step_size"):
        if run.get(key) is not None:
            run[key] = int(run[key])


def resolve_protocol(protocol: dict, metric: metric_registry.Metric) -> dict:
    """The metric's protocol with what it leaves to the metric filled in: the test interval
    (the metric's own, `Metric.test_interval`) and the selection rule (`UNNAMED_SELECT`).
    An explicit value wins."""
    resolved = copy.deepcopy(protocol)
    if resolved.get("test_interval") is None:
        resolved["test_interval"] = metric.test_interval
    if resolved.get("select") is None:
        resolved["select"] = UNNAMED_SELECT
    return resolved


def run_protocol(protocol: dict, lr_source: str, labels: dict | None = None) -> dict:
    """The canonical protocol of one run: training keys, the resolved LR and, for soft
    labels, the resolved recipe (loss kwargs with defaults, teachers and their sources)."""
    run = {k: copy.deepcopy(protocol.get(k)) for k in TRAINING_KEYS}
    # keys that only some runs have (divergence: only when it changes the default bound)
    for key in (*TRANSFORM_KEYS, "processes", "divergence"):
        if not run[key]:
            del run[key]
    if precision_of(run) == UNNAMED_PRECISION:  # fp32 runs keep the keys they had
        del run["precision"]
    canonicalise(run)
    run["labels"] = "soft" if labels else "hard"
    run["label_source"] = "none"
    if labels:
        run.update(copy.deepcopy(labels))
    if run["label_source"] not in LABEL_SOURCES or (labels is None) != (
        run["label_source"] == "none"
    ):
        raise ValueError(f"label_source {run['label_source']!r} does not fit labels {labels!r}")
    if run["scheduler"] == "step" and not run["step_size"]:
        run["step_size"] = max(1, run["epochs"] // 2)  # DC convention: decay at half way
    if run["scheduler"] != "step":
        run["step_size"] = None
        run["gamma"] = None
    run["lr_source"] = lr_source
    if lr_source == "grid" and not protocol.get("lr_grid"):
        raise ConfigError("the protocol sets neither lr nor lr_grid; set one of them")
    if lr_source == "grid":
        run["lr_grid"] = [float(x) for x in protocol["lr_grid"]]
    elif lr_source == "fixed":
        run["lr"] = float(protocol["lr"])
    return run


@dataclass(frozen=True)
class SetId:
    """A set a run trains on: the real train split, a round's random subset of `ipc`
    images per class, or a method's syn set. `name` is its `set` wildcard."""

    kind: str  # real | given | rdm | syn
    ipc: int | None = None  # rdm
    method: str | None = None  # syn

    @property
    def name(self) -> str:
        if self.kind == "real":
            return "real"
        if self.kind == "given":  # a known real-hard accuracy, not a training
            return "real-given"
        if self.kind == "rdm":
            return f"rdm-ipc{self.ipc}"
        return f"syn-{self.method}"


REAL = SetId("real")
GIVEN = SetId("given")


def run_file(dataset: str, set_id: SetId, key: str, seed: int) -> str:
    pattern = {"real": paths.REAL_RUN, "given": paths.GIVEN_RUN}.get(set_id.kind, paths.RUN)
    return pattern.format(dataset=dataset, set=set_id.name, protocol=key, seed=seed)
