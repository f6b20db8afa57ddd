"""What the engine trains and returns: a `Split` of images and labels, the `RunGroup` of
runs that share a set, a protocol and a seed, and each run's `RunResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ddrank_steps.transforms.batches import BatchTransform


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
    # {"epoch", "reason"} once judged diverged (training/divergence.py), else None
    divergence: dict | None = None

    @property
    def diverged_at(self) -> int | None:
        """The epoch from which the run counts as diverged: as judged, or else the first
        evaluated epoch whose mean train loss was not finite (None if none)."""
        if self.divergence is not None:
            return self.divergence["epoch"]
        return next((p["epoch"] for p in self.curve if p["train_loss"] is None), None)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("state")
        if out["divergence"] is None:  # a healthy run's file stays as it was
            out.pop("divergence")
        out["diverged"] = self.diverged_at is not None
        return out


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
