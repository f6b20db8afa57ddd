"""The training engine: train one set under one protocol at each LR of a grid, one seed.

One call (`train_group`) trains a *group* of runs that share a set, a protocol and a seed
and differ only in LR; what they share is a `RunGroup`. Every run of the group starts from
the same initial weights and sees the same batch order and augmentation draws (all from
seed-derived generators), so the LRs are compared on equal terms; runs of other sets in
the same round share them too.

Tiny sets live wholly on the device: no DataLoader, whole-tensor indexing, and no
host synchronisation inside an epoch (the loss is accumulated on the device).

Selection (`select`):
- `best`  (reference): each run reports its best test accuracy over the evaluated
  epochs; the LR with the highest such accuracy wins.
- `final` (DC-BENCH/MTT): each run reports its last epoch; LR by that accuracy.
- `val`: epoch and LR are chosen on a held-out split of the real train set; the test
  accuracy at that point is reported, so the test set is never used to choose.
Ties go to the earlier epoch and to the earlier LR of the grid (the reference's
strict `>`).

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

Unlike the reference, the final epoch is always evaluated, so no epochs are wasted
when `epochs` is not a multiple of `test_interval`.

The runs of a group train one after the other (`train_one`), or together
(`train_together`, `train_group(concurrent=True)`): every run steps on the same prepared
batch in turn, each on its own CUDA stream on a GPU, so the small kernels of K tiny
models overlap instead of leaving most of the device idle. Both give every run the same
batches, draws and arithmetic, so the results agree (bit for bit on the CPU; on a GPU up
to the kernels' own nondeterminism). `concurrent_lrs` decides from the
`resources.concurrent_lrs` setting and the device.

A real split too large to cache (ImageNet) arrives streamed: its `images` is a
`streaming.StreamedImages`, and batches and evaluation then come from a DataLoader
(`streaming.train_batches`, `streaming.evaluate`) in the same seeded order. The
in-memory path does exactly what it did before (`_batches` slices the device tensors).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ddrank_steps.augment import build_augmentation, mixed_loss
from ddrank_steps.data import streaming
from ddrank_steps.models import build_model
from ddrank_steps.protocol_defaults import UNNAMED_PRECISION, precision_of
from ddrank_steps.seeding import derive_seed
from ddrank_steps.training import distributed, precision
from ddrank_steps.training.label_targets import HARD, STORED, TEACHERS, label_source
from ddrank_steps.training.losses import make_soft_loss
from ddrank_steps.training.optimisers import make_optimizer, make_scheduler
from ddrank_steps.transforms.batches import BatchTransform

log = logging.getLogger("ddrank.engine")
SELECT_RULES = ("best", "final", "val")


@dataclass
class Split:
    images: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None = None  # (N, K) teacher logits, for soft labels in mode S


@dataclass
class RunResult:
    lr: float
    curve: list[dict] = field(default_factory=list)  # {"epoch", "test", "val", "train_loss"}
    selected_epoch: int = 0
    acc: float = 0.0  # test accuracy (fraction) at the selected epoch
    val_acc: float | None = None
    seconds: float = 0.0  # wall time; of the whole group when its LRs trained together
    state: dict | None = field(default=None, repr=False)  # weights at the selected epoch

    @property
    def diverged_at(self) -> int | None:
        """The first evaluated epoch whose mean train loss was not finite (None if none)."""
        return next((p["epoch"] for p in self.curve if p["train_loss"] is None), None)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("state")
        out["diverged"] = self.diverged_at is not None
        return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
        batch = _in_layout(images[start : start + batch_size], layout)
        with precision.autocast(arithmetic, device):
            out = model(batch)
        correct += (out.argmax(1) == labels[start : start + batch_size]).sum()
    model.train()
    if world > 1:
        hits, total = distributed.sum_counts(correct, len(labels))
        return hits / total
    return correct.item() / len(labels)


class LabelRecipe:
    """Turns a batch's model output into its loss, under the run's label source
    (`label_targets`): hard labels, stored per-image logits (mode S, `Split.soft`), or the
    teachers' logits of the batch itself (mode M)."""

    def __init__(self, protocol: dict, teachers: torch.nn.Module | None):
        self.source = label_source(protocol)
        self.teachers = teachers
        self.soft_loss = None
        if self.source != HARD:
            self.soft_loss = make_soft_loss(
                protocol["soft_label_criterion"], protocol.get("loss_fn_kwargs")
            )
        if self.source == TEACHERS and teachers is None:
            raise ValueError("soft labels in mode M need teachers")

    @property
    def stored(self) -> bool:
        """Whether the targets are per-image logits stored with the set (mode S)."""
        return self.source in STORED

    def loss(self, out, images, labels, soft, mix) -> torch.Tensor:
        if self.source == HARD:
            return mixed_loss(F.cross_entropy, out, labels, mix)
        if self.source == TEACHERS:
            targets = self.teachers(images)  # the augmented (and mixed) images themselves
            return mixed_loss(lambda o, y: self.soft_loss(o, targets, y), out, labels, mix)
        return mixed_loss(lambda o, t: self.soft_loss(o, t[0], t[1]), out, (soft, labels), mix)


def _select_point(curve: list[dict], rule: str) -> dict:
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


@dataclass
class RunGroup:
    """What the runs of a group share: one set trained under one protocol at one seed.

    The runs differ only in LR (`train_group` takes the LRs beside it). `train` is the set,
    `test` and `val` the dataset's splits (`val` None without a held-out split), `shape`
    (channels, height, width); `teachers` relabel every batch in mode M; `transform` is the
    protocol's train_transforms; `keep_state` keeps the selected run's weights.
    """

    protocol: dict
    seed: int
    train: Split
    test: Split
    val: Split | None
    shape: tuple[int, int, int]
    num_classes: int
    teachers: torch.nn.Module | None = None
    transform: BatchTransform | None = None
    keep_state: bool = False
    # The real train split: a real-hard run is also its round's teacher, so it draws its
    # initial weights from its own stream; from the students' stream, every student would
    # start from its teacher's initial weights.
    real: bool = False


@dataclass
class _Run:
    """One run in progress: its model, optimisation, label recipe and random streams."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its data-parallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    augment: object | None
    recipe: LabelRecipe
    order_gen: torch.Generator
    aug_gen: torch.Generator
    rank: int
    world: int
    loss_sum: torch.Tensor  # summed on the device since the last evaluation point
    arithmetic: str = UNNAMED_PRECISION  # the protocol's precision
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scaler
    layout: torch.memory_format = torch.contiguous_format
    steps: int = 0


def _start_run(group: RunGroup, lr: float) -> _Run:
    """The model, optimizer and seeded streams of one run. The draws come in a fixed order
    (initial weights, then batch order, augmentation and transform streams), so every run
    of a group starts from the same weights and sees the same batches."""
    protocol, seed, device = group.protocol, group.seed, group.train.images.device
    torch.manual_seed(
        derive_seed("init", "real", seed) if group.real else derive_seed("init", seed)
    )
    channels, height, width = group.shape
    arithmetic = precision_of(protocol)
    layout = precision.memory_format(arithmetic, device)
    model = build_model(
        protocol["model"],
        group.num_classes,
        channels,
        (height, width),
        protocol.get("model_options"),
    ).to(device, memory_format=layout)
    optimizer = make_optimizer(protocol, model.parameters(), lr)
    scheduler = make_scheduler(protocol, optimizer)
    augment = build_augmentation(protocol.get("augmentation"), protocol.get("aug_params"))
    recipe = LabelRecipe(protocol, group.teachers)
    if recipe.stored and group.train.soft is None:
        raise ValueError("soft labels in mode S need per-image soft labels")
    rank, world = distributed.rank_world()
    net = distributed.wrap(model, device) if world > 1 else model
    order_gen = torch.Generator().manual_seed(derive_seed("order", seed))
    # ranks augment different images, so each draws its own parameters
    aug_seed = derive_seed("augment", seed) if rank == 0 else derive_seed("augment", seed, rank)
    aug_gen = torch.Generator(device=device).manual_seed(aug_seed)
    if group.transform is not None:  # its own stream, like the augmentation's
        group.transform.reseed(
            derive_seed("transforms", seed) if rank == 0 else derive_seed("transforms", seed, rank)
        )
    loss_sum = torch.zeros((), device=device)
    return _Run(
        model,
        net,
        optimizer,
        scheduler,
        augment,
        recipe,
        order_gen,
        aug_gen,
        rank,
        world,
        loss_sum,
        arithmetic=arithmetic,
        scaler=precision.grad_scaler(arithmetic, device),
        layout=layout,
    )


def _epoch_batches(group: RunGroup, run: _Run):
    """(images, labels, soft, mix) of each training batch of an epoch: a fresh seeded
    order, then the protocol's train_transforms and the batch augmentation, drawn from
    `run`'s streams."""
    train, batch = group.train, group.protocol["batch_size"]
    order = torch.randperm(len(train.labels), generator=run.order_gen)
    if run.world > 1:
        order = distributed.shard_order(order, batch, run.rank, run.world)
    for images, labels, soft in _batches(train, order.to(train.images.device), batch // run.world):
        mix = None
        if group.transform is not None:
            images = group.transform(images)
        if run.augment is not None:
            images, mix = run.augment(images, run.aug_gen)
        yield images, labels, soft, mix


def _step(group: RunGroup, run: _Run, images, labels, soft, mix) -> None:
    """One optimisation step of one run on a prepared batch, in the run's arithmetic; the
    loss stays on the device."""
    images = _in_layout(images, run.layout)
    with precision.autocast(run.arithmetic, images.device):
        loss = run.recipe.loss(run.net(images), images, labels, soft, mix)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is None:
        loss.backward()
        run.optimizer.step()
    else:  # fp16: scaled gradients; a step with inf/NaN gradients is skipped
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    run.loss_sum += loss.detach().float()
    run.steps += 1


def _in_layout(images: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    if layout == torch.contiguous_format or images.dim() != 4:
        return images
    return images.contiguous(memory_format=layout)


def _train_epoch(group: RunGroup, run: _Run) -> None:
    """One pass over the set in a fresh seeded order, then one scheduler step."""
    for images, labels, soft, mix in _epoch_batches(group, run):
        _step(group, run, images, labels, soft, mix)
    run.scheduler.step()


def _evaluation_point(group: RunGroup, run: _Run, result: RunResult, epoch: int) -> None:
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
    if group.keep_state and _select_point(result.curve, group.protocol["select"]) is point:
        result.state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    run.loss_sum.zero_()
    run.steps = 0


def _select_epoch(result: RunResult, rule: str) -> None:
    """Record the point of the curve that the selection rule picks as the run's result."""
    chosen = _select_point(result.curve, rule)
    result.selected_epoch = chosen["epoch"]
    result.acc = chosen["test"]
    result.val_acc = chosen["val"]


def train_one(group: RunGroup, lr: float, progress: tqdm | None = None) -> RunResult:
    """One run of the group: train at `lr`, evaluating at the protocol's points."""
    start_time = time.perf_counter()
    protocol = group.protocol
    run = _start_run(group, lr)
    checkpoints = eval_epochs(protocol["epochs"], protocol["test_interval"])
    result = RunResult(lr=lr)
    run.model.train()
    for epoch in range(1, protocol["epochs"] + 1):
        _train_epoch(group, run)
        if epoch in checkpoints:
            _evaluation_point(group, run, result, epoch)
        if progress is not None:
            progress.update(1)
    _select_epoch(result, protocol["select"])
    result.seconds = time.perf_counter() - start_time
    return result


class _Lanes:
    """Where the runs of a group step together: one CUDA stream per run on a GPU, plain
    interleaving on the CPU. Each run keeps its own global RNG state (dropout and the like
    draw from it), swapped in around its steps, so it draws what it would draw alone."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.streams: list = []
        self.rng_states: list[tuple] = []

    def add(self) -> None:
        """A lane for the run `_start_run` just made, from the RNG state it left."""
        self.streams.append(torch.cuda.Stream(self.device) if self.cuda else None)
        self.rng_states.append(self._rng_state())

    def _rng_state(self) -> tuple:
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda else None

    def _set_rng_state(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    def step(self, group: RunGroup, runs: list[_Run], batch: tuple) -> None:
        """One step of every run on the same batch. On a GPU each run's kernels queue on its
        stream after the batch is ready, and the default stream waits for all of them
        before the next batch (whose tensors may reuse this one's memory) or an evaluation."""
        main = torch.cuda.current_stream(self.device) if self.cuda else None
        for i, run in enumerate(runs):
            self._set_rng_state(self.rng_states[i])
            if self.cuda:
                self.streams[i].wait_stream(main)
                with torch.cuda.stream(self.streams[i]):
                    _step(group, run, *batch)
            else:
                _step(group, run, *batch)
            self.rng_states[i] = self._rng_state()
        if self.cuda:
            for stream in self.streams:
                main.wait_stream(stream)


def train_together(
    group: RunGroup, lrs: list[float], progress: tqdm | None = None
) -> list[RunResult]:
    """Every run of the group at once, batch by batch: each batch (order, transforms,
    augmentation, mixing λ) is prepared once and every run steps on it, which is what each
    would see alone since their streams are seeded alike. One process only (no DDP)."""
    if distributed.rank_world()[1] > 1:
        raise ValueError("LRs train together only in one process; under DDP train_one each")
    start_time = time.perf_counter()
    protocol = group.protocol
    lanes = _Lanes(group.train.images.device)
    runs = []
    for lr in lrs:  # each start reseeds the shared streams to the same seeds
        runs.append(_start_run(group, lr))
        lanes.add()
    checkpoints = eval_epochs(protocol["epochs"], protocol["test_interval"])
    results = [RunResult(lr=lr) for lr in lrs]
    for run in runs:
        run.model.train()
    for epoch in range(1, protocol["epochs"] + 1):
        for batch in _epoch_batches(group, runs[0]):
            lanes.step(group, runs, batch)
        for run in runs:
            run.scheduler.step()
        if epoch in checkpoints:
            for run, result in zip(runs, results, strict=True):
                _evaluation_point(group, run, result, epoch)
        if progress is not None:
            progress.update(len(runs))
    seconds = time.perf_counter() - start_time
    for result in results:
        _select_epoch(result, protocol["select"])
        result.seconds = seconds
    return results


CONCURRENT_LRS = ("auto", "on", "off")


def concurrent_lrs(setting: str, device: torch.device, streamed: bool = False) -> bool:
    """Whether a group's LRs train together (`train_together`). `auto`: on a GPU in one
    process with the set in memory: there a tiny model leaves the device mostly idle, while
    on the CPU the loop is compute-bound and one run at a time is as fast; a streamed
    (large) set fills the device alone and K copies of its activations may not fit. Under
    DDP the runs always train one at a time."""
    if setting not in CONCURRENT_LRS:
        raise ValueError(
            f"concurrent_lrs is {setting!r}; valid values: {', '.join(CONCURRENT_LRS)}"
        )
    if distributed.rank_world()[1] > 1:
        return False
    if setting == "auto":
        return device.type == "cuda" and not streamed
    return setting == "on"


def _batches(train: Split, order: torch.Tensor, batch: int):
    """(images, labels, soft) of each batch of an epoch, in `order`."""
    if streaming.is_streamed(train.images):
        yield from streaming.train_batches(train, order, batch)
        return
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        soft = train.soft[idx] if train.soft is not None else None
        yield train.images[idx], train.labels[idx], soft


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


def train_group(
    group: RunGroup, lrs: list[float], show_progress: bool = True, concurrent: bool = False
) -> tuple[list[RunResult], int]:
    """Every run of the group, one per LR, and the index of the selected LR. Only the
    selected run keeps its weights (with `keep_state`). With `concurrent` (and one process,
    more than one LR) the runs train together (`train_together`), else one at a time."""
    protocol = group.protocol
    if protocol["select"] == "val" and group.val is None:
        raise ValueError("select: val needs a validation split (dataset val_fraction > 0)")
    together = concurrent and len(lrs) > 1 and distributed.rank_world()[1] == 1
    total = len(lrs) * protocol["epochs"]
    # In a job's log file (not a terminal) a bar redrawn every few ms is just noise.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    with tqdm(
        total=total, desc="train", unit="epoch", disable=not show_progress, mininterval=interval
    ) as bar:
        if together:
            log.info("the %d LRs train together on %s", len(lrs), group.train.images.device)
            bar.set_postfix(lrs=len(lrs))
            results = train_together(group, lrs, bar)
            for result in results:
                _log_run(result)
        else:
            results = []
            for lr in lrs:
                bar.set_postfix(lr=lr)
                results.append(train_one(group, lr, bar))
                _log_run(results[-1])
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


def _log_run(result: RunResult) -> None:
    log.info(
        "lr %g: acc %.4f at epoch %d (%.1fs)",
        result.lr,
        result.acc,
        result.selected_epoch,
        result.seconds,
    )
    if result.diverged_at is not None:
        log.warning(
            "lr %g diverged: the train loss is not finite from epoch %d on, so its "
            "accuracy is that of a broken net",
            result.lr,
            result.diverged_at,
        )
