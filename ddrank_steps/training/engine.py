"""The training engine: train one set under one protocol at each LR of a grid, one seed.

One call (`train_group`) trains a *group* of runs that share a set, a protocol and a seed
and differ only in LR; what they share is a `RunGroup` (`group`). Every run of the group
starts from the same initial weights and sees the same batch order and augmentation draws
(all from seed-derived generators), so the LRs are compared on equal terms; runs of other
sets in the same round share them too. A run's start-up and steps are `run_steps`; its
evaluation points, the epoch its protocol's `select` rule picks and the winning LR are
`evaluation`.

Labels (the run protocol's `label_source`, decided by the planner, see `label_targets`):
`none` trains with cross-entropy; the others with a soft-label loss against teacher
logits, either stored per image (mode S: `teacher_logits` or `set`, in `Split.soft`) or
recomputed by the teachers on every augmented batch (mode M: `teachers`), in eval mode
and without gradients. A mixed batch (Mixup/Cutmix) mixes the targets with the same λ; in
mode M the teachers label the mixed images themselves.

A protocol's `train_transforms` arrive as the group's `transform`: applied to every
training batch, each image with its own draws, before the batch augmentation
(`transforms.batches`), from a stream seeded per run. Test and val splits arrive with
`test_transforms` applied.

The runs of a group train one after the other (`train_one`), or together
(`together.train_together`, `train_group(concurrent=True)`), with the same results.
`concurrent_lrs` decides from the `resources.concurrent_lrs` setting and the device
(`runtime.job_policy.lrs_train_together`).

A real split too large to cache (ImageNet) arrives streamed: its `images` is a
`streaming.StreamedImages`, and batches and evaluation then come from a DataLoader
(`streaming.train_batches`, `streaming.evaluate`) in the same seeded order. The
in-memory path does exactly what it did before (`run_steps` slices the device tensors).

Given a job's `checkpoints.Checkpoints`, a group writes its state at the end of an epoch
when due and goes on from a usable checkpoint of the same computation: the finished runs
as they were, the run in progress (or, trained together, all of them) from its epoch,
with the same results as uninterrupted (`checkpoints`).
"""

from __future__ import annotations

import logging
import sys
import time
from functools import partial

import torch
from tqdm import tqdm

from ddrank_steps.runtime import job_policy
from ddrank_steps.runtime.job_policy import CONCURRENT_LRS
from ddrank_steps.training import checkpoints as checkpointing
from ddrank_steps.training import distributed
from ddrank_steps.training.checkpoints import Checkpoints
from ddrank_steps.training.divergence import divergence_of, loss_growth_of
from ddrank_steps.training.evaluation import (
    SELECT_RULES,
    eval_epochs,
    evaluate,
    evaluation_point,
    select_epoch,
    select_lr,
)
from ddrank_steps.training.group import RunGroup, RunResult, Split
from ddrank_steps.training.run_steps import LabelRecipe, Run, epoch_batches, start_run, step
from ddrank_steps.training.together import train_together

# The engine's names, as its callers import them.
__all__ = [
    "CONCURRENT_LRS",
    "SELECT_RULES",
    "LabelRecipe",
    "RunGroup",
    "RunResult",
    "Split",
    "concurrent_lrs",
    "eval_epochs",
    "evaluate",
    "resolve_device",
    "select_lr",
    "train_group",
    "train_one",
    "train_together",
]

log = logging.getLogger("ddrank.engine")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def concurrent_lrs(setting: str, device: torch.device, streamed: bool = False) -> bool:
    """Whether a group's LRs train together (`train_together`) in this process, from the
    --concurrent-lrs setting (auto, on, off): `job_policy.lrs_train_together` on `device`
    and this process's DDP world."""
    return job_policy.lrs_train_together(
        setting, device.type, processes=distributed.rank_world()[1], streamed=streamed
    )


def _train_epoch(group: RunGroup, run: Run) -> None:
    """One pass over the set in a fresh seeded order, then one scheduler step."""
    for images, labels, soft, mix in epoch_batches(group, run):
        step(group, run, images, labels, soft, mix)
    run.scheduler.step()


def train_one(
    group: RunGroup,
    lr: float,
    progress: tqdm | None = None,
    checkpoints: Checkpoints | None = None,
    done: list[RunResult] | None = None,
    saved: dict | None = None,
) -> RunResult:
    """One run of the group: train at `lr`, evaluating at the protocol's points. With
    `checkpoints`, the state after an epoch (and the group's finished runs, `done`) is
    written when due, and `saved` is a checkpoint of this run to go on from."""
    start_time = time.perf_counter()
    protocol = group.protocol
    run = start_run(group, lr)
    result = RunResult(lr=lr)
    first = checkpointing.resume(group, [run], [result], saved) + 1 if saved else 1
    if progress is not None:
        progress.update(first - 1)
    points = eval_epochs(protocol["epochs"], protocol["test_interval"])
    run.model.train()
    for epoch in range(first, protocol["epochs"] + 1):
        _train_epoch(group, run)
        if epoch in points:
            evaluation_point(group, run, result, epoch)
        if checkpoints is not None:
            checkpoints.after_epoch(
                epoch,
                epoch in points,
                partial(checkpointing.snapshot, group, [run], [result], epoch, done or []),
            )
        if progress is not None:
            progress.update(1)
    select_epoch(result, protocol["select"])
    result.seconds += time.perf_counter() - start_time
    return result


def train_group(
    group: RunGroup,
    lrs: list[float],
    show_progress: bool = True,
    concurrent: bool = False,
    checkpoints: Checkpoints | None = None,
) -> tuple[list[RunResult], int]:
    """Every run of the group, one per LR, and the index of the selected LR. Only the
    selected run keeps its weights (with `keep_state`). With `concurrent` (and one process,
    more than one LR) the runs train together (`train_together`), else one at a time. With
    `checkpoints` the group goes on from its checkpoint, if it has a usable one."""
    protocol = group.protocol
    if protocol["select"] == "val" and group.val is None:
        raise ValueError("select: val needs a validation split (dataset val_fraction > 0)")
    together = job_policy.lrs_train_together(
        "on" if concurrent else "off",
        group.train.images.device.type,
        processes=distributed.rank_world()[1],
        lrs=len(lrs),
    )
    saved = checkpoints.restore() if checkpoints is not None else None
    total = len(lrs) * protocol["epochs"]
    # In a job's log file (not a terminal) a bar redrawn every few ms is just noise.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    with tqdm(
        total=total, desc="train", unit="epoch", disable=not show_progress, mininterval=interval
    ) as bar:
        if together:
            log.info("the %d LRs train together on %s", len(lrs), group.train.images.device)
            bar.set_postfix(lrs=len(lrs))
            results = train_together(group, lrs, bar, checkpoints, saved)
            for result in results:
                _log_run(result)
        else:
            results = _train_in_turn(group, lrs, bar, checkpoints, saved)
    for result in results:
        _judge_divergence(group, result)
    if all(r.diverged_at is not None for r in results):
        log.warning(
            "every LR diverged (%s): this run is marked diverged in its run file, and in the "
            "scores and leaderboard that use it; try smaller LRs",
            ", ".join(f"{r.lr:g}" for r in results),
        )
    best = select_lr(results, protocol["select"])
    for i, r in enumerate(results):  # only the selected LR's weights are worth keeping
        if i != best:
            r.state = None
    return results, best


def _train_in_turn(
    group: RunGroup,
    lrs: list[float],
    bar: tqdm,
    checkpoints: Checkpoints | None,
    saved: dict | None,
) -> list[RunResult]:
    """The runs one after the other; from a checkpoint, the finished ones are taken as they
    were and the one in progress goes on from its epoch."""
    results = [checkpointing.result_from(r) for r in saved["shared"]["done"]] if saved else []
    if saved:
        log.info(
            "resumed from epoch %d of lr %g (%d LR(s) of %d done before)",
            saved["shared"]["epoch"],
            lrs[len(results)],
            len(results),
            len(lrs),
        )
        bar.update(len(results) * group.protocol["epochs"])
    pending = saved  # the first run trained here is the one the checkpoint was in
    for lr in lrs[len(results) :]:
        bar.set_postfix(lr=lr)
        results.append(train_one(group, lr, bar, checkpoints, results, pending))
        pending = None
        _log_run(results[-1])
    return results


def _log_run(result: RunResult) -> None:
    log.info(
        "lr %g: acc %.4f at epoch %d (%.1fs)",
        result.lr,
        result.acc,
        result.selected_epoch,
        result.seconds,
    )


def _judge_divergence(group: RunGroup, result: RunResult) -> None:
    """Mark a blown-up run diverged, with the reason, and say so in the log."""
    growth = loss_growth_of(group.protocol)
    result.divergence = divergence_of(result.curve, group.num_classes, growth)
    if result.divergence is not None:
        log.warning(
            "lr %g diverged at epoch %d: %s, so its accuracy is that of a broken net",
            result.lr,
            result.divergence["epoch"],
            result.divergence["reason"],
        )
