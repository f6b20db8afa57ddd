"""A run's training targets, from the label source that its run protocol carries.

The planner decides once where a run's targets come from and writes it into the run
protocol as `label_source` (`plan.LABEL_SOURCES`); the engine and the train stage read it
here instead of working it out again from `labels` / `soft_label_mode` / `soft_source`:

- `none`: hard labels (cross-entropy);
- `teachers`: mode M, the teacher ensemble relabels every (augmented) batch;
- `teacher_logits`: mode S, one stored row of teacher logits per image, made by the
  soft_labels stage and given to the train stage with `--soft-labels`;
- `set`: mode S, the syn set file's own `soft_labels`.

This module loads what a source needs: the stored logits (mode S) or the ensemble (mode M).
"""

from __future__ import annotations

import torch

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.runtime.checked_read import load_torch, rebuild_fix, tensor
from ddrank_steps.training.teachers import Ensemble, load_ensemble

HARD = "none"
TEACHERS = "teachers"  # mode M
STORED = ("teacher_logits", "set")  # mode S: per-image logits stored beside the set


def label_source(protocol: dict) -> str:
    """The run protocol's label source, checked."""
    source = protocol.get("label_source")
    if source is None:
        raise ConfigError(
            "the run protocol has no label_source: the planner writes it into every run "
            "protocol (plan.run_protocol); rebuild the protocol with it"
        )
    if source not in (HARD, TEACHERS, *STORED):
        raise ConfigError(
            f"label_source {source!r} is unknown; expected one of "
            f"{', '.join(repr(s) for s in (HARD, TEACHERS, *STORED))}"
        )
    return source


def soft_targets(
    protocol: dict,
    set_blob: dict | None,
    num_images: int,
    num_classes: int,
    set_path: str,
    soft_labels_path: str | None,
) -> torch.Tensor | None:
    """The per-image teacher logits of a mode-S run (None for any other source), as
    float, checked to hold one row of `num_classes` logits per image of the set."""
    source = label_source(protocol)
    if source == "set":
        if set_blob is None or set_blob.get("soft_labels") is None:
            raise InputError(set_path, "soft_labels", "missing", "give the method's labels")
        soft = set_blob["soft_labels"].float()
    elif source == "teacher_logits":
        if not soft_labels_path:
            raise ConfigError("mode S with teacher labels needs --soft-labels")
        blob = load_torch(soft_labels_path)
        soft = tensor(blob, "soft_labels", soft_labels_path, "soft_labels", ndim=2).float()
    else:
        return None
    if soft.shape != (num_images, num_classes):
        path = soft_labels_path or set_path
        expected = f"expected ({num_images}, {num_classes})"
        # a teacher's labels are a cached result to rebuild; a set's came with the method
        fix = (
            rebuild_fix(path) if soft_labels_path else f"give the method's soft labels, {expected}"
        )
        raise InputError(path, "soft_labels", f"has shape {tuple(soft.shape)}, {expected}", fix)
    return soft


def teacher_ensemble(
    protocol: dict, paths: list[str], meta: DatasetMeta, device: torch.device
) -> Ensemble | None:
    """The mode-M teachers (None for any other source): one checkpoint in `paths` per
    entry of the protocol's `teachers`, in that order."""
    if label_source(protocol) != TEACHERS:
        return None
    return load_ensemble(protocol["teachers"], paths, meta, device)
