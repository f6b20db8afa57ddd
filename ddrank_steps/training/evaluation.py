"""A run's evaluation points and selection: test (and val) accuracy at the protocol's
epochs (`eval_epochs`, `evaluation_point`), the epoch its `select` rule picks
(`select_epoch`) and the LR that wins the grid (`select_lr`).

Selection (`select`):
- `best`  (reference): each run reports its best test accuracy over the evaluated
  epochs; the LR with the highest such accuracy wins.
- `final` (DC-BENCH/MTT): each run reports its last epoch; LR by that accuracy.
- `val`: epoch and LR are chosen on a held-out split of the real train set; the test
  accuracy at that point is reported, so the test set is never used to choose.
Ties go to the earlier epoch and to the earlier LR of the grid (the reference's
strict `>`).

Unlike the reference, the final epoch is always evaluated, so no epochs are wasted
when `epochs` is not a multiple of `test_interval`. A streamed split is evaluated through
a DataLoader (`streaming.evaluate`).
"""

from __future__ import annotations

import math

import torch

from ddrank_steps.data import streaming
from ddrank_steps.protocol_defaults import UNNAMED_PRECISION
from ddrank_steps.training import distributed, precision
from ddrank_steps.training.group import RunGroup, RunResult, Split
from ddrank_steps.training.run_steps import Run

SELECT_RULES = ("best", "final", "val")


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    batch_size: int | None = None,
    arithmetic: str = UNNAMED_PRECISION,
) -> float:
    """Test accuracy (a fraction), in the run's arithmetic (`precision`)."""
    rank, world = distributed.rank_world()
    if world > 1:
        distributed.sync_buffers(model)
    device = split.labels.device
    batch_size = batch_size or precision.eval_batch(arithmetic, device)
    if streaming.is_streamed(split.images):
        # every rank reads the whole streamed split: correct, if not the fastest
        with precision.autocast(arithmetic, device):
            return streaming.evaluate(model, split, batch_size)
    model.eval()
    layout = precision.memory_format(arithmetic, device)
    images, labels = split.images[rank::world], split.labels[rank::world]
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(labels), batch_size):
        batch = precision.in_layout(images[start : start + batch_size], layout)
        with precision.autocast(arithmetic, device):
            out = model(batch)
        correct += (out.argmax(1) == labels[start : start + batch_size]).sum()
    model.train()
    if world > 1:
        hits, total = distributed.sum_counts(correct, len(labels))
        return hits / total
    return correct.item() / len(labels)


def select_point(curve: list[dict], rule: str) -> dict:
    if rule == "final":
        return curve[-1]
    key = "val" if rule == "val" else "test"
    best = curve[0]
    for point in curve[1:]:
        if point[key] > best[key]:  # strict: ties keep the earlier epoch
            best = point
    return best


def eval_epochs(epochs: int, interval: int) -> set[int]:
    return {e for e in range(1, epochs + 1) if e % interval == 0} | {epochs}


def evaluation_point(group: RunGroup, run: Run, result: RunResult, epoch: int) -> None:
    """Test (and val) accuracy and the mean train loss since the last point, added to the
    run's curve; the weights are kept when this point is the selected one so far."""
    point = {
        "epoch": epoch,
        "test": evaluate(run.model, group.test, arithmetic=run.arithmetic),
        "val": (
            evaluate(run.model, group.val, arithmetic=run.arithmetic)
            if group.val is not None
            else None
        ),
        "train_loss": run.loss_sum.item() / max(run.steps, 1),
    }
    if not math.isfinite(point["train_loss"]):  # NaN or inf: diverged at this LR
        point["train_loss"] = None
    result.curve.append(point)
    if group.keep_state and select_point(result.curve, group.protocol["select"]) is point:
        result.state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    run.loss_sum.zero_()
    run.steps = 0


def select_epoch(result: RunResult, rule: str) -> None:
    """Record the point of the curve that the selection rule picks as the run's result."""
    chosen = select_point(result.curve, rule)
    result.selected_epoch = chosen["epoch"]
    result.acc = chosen["test"]
    result.val_acc = chosen["val"]


def select_lr(results: list[RunResult], rule: str) -> int:
    """Index of the winning LR: strict `>` so ties go to the earlier LR of the grid. A
    diverged LR (a non-finite train loss, e.g. an fp16 overflow) is never chosen while
    another LR trained; when every LR diverged, the rule picks among them all."""

    def score(r: RunResult) -> float:
        return r.val_acc if rule == "val" else r.acc

    candidates = [i for i, r in enumerate(results) if r.diverged_at is None]
    candidates = candidates or list(range(len(results)))
    best = candidates[0]
    for i in candidates[1:]:
        if score(results[i]) > score(results[best]):
            best = i
    return best
