"""One run of a group: its start-up (`start_run`: model, optimiser, label recipe and
seeded streams) and its steps (`epoch_batches`, `step`), shared by the runs trained one
at a time (`engine.train_one`) and together (`together.train_together`).

Tiny sets live wholly on the device: no DataLoader, whole-tensor indexing, and no
host synchronisation inside an epoch (the loss is accumulated on the device). A real
split too large to cache (ImageNet) arrives streamed (`streaming.StreamedImages`), and
its batches come from a DataLoader (`streaming.train_batches`) in the same seeded order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddrank_steps.augment import build_augmentation, mixed_loss
from ddrank_steps.data import streaming
from ddrank_steps.models import build_model
from ddrank_steps.protocol_defaults import UNNAMED_PRECISION, precision_of
from ddrank_steps.seeding import derive_seed
from ddrank_steps.training import distributed, precision
from ddrank_steps.training.group import RunGroup, Split
from ddrank_steps.training.label_targets import HARD, STORED, TEACHERS, label_source
from ddrank_steps.training.losses import make_soft_loss
from ddrank_steps.training.optimisers import make_optimizer, make_scheduler


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


@dataclass
class Run:
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


def start_run(group: RunGroup, lr: float) -> Run:
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
    return Run(
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


def epoch_batches(group: RunGroup, run: Run):
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


def step(group: RunGroup, run: Run, images, labels, soft, mix) -> None:
    """One optimisation step of one run on a prepared batch, in the run's arithmetic; the
    loss stays on the device."""
    images = precision.in_layout(images, run.layout)
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


def _batches(train: Split, order: torch.Tensor, batch: int):
    """(images, labels, soft) of each batch of an epoch, in `order`."""
    if streaming.is_streamed(train.images):
        yield from streaming.train_batches(train, order, batch)
        return
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        soft = train.soft[idx] if train.soft is not None else None
        yield train.images[idx], train.labels[idx], soft
