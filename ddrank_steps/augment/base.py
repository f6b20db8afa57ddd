"""The interface every batch augmentation implements (kept apart to avoid import cycles)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class Mix:
    """Label mixing for a mixed batch: loss = lam * L(out, y) + (1 - lam) * L(out, y[perm])."""

    perm: torch.Tensor
    lam: float


class BatchAugmentation(Protocol):
    def __call__(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Mix | None]: ...


def mixed_loss(
    loss_fn: Callable[[torch.Tensor, Any], torch.Tensor],
    output: torch.Tensor,
    targets: torch.Tensor | tuple[torch.Tensor, ...],
    mix: Mix | None,
) -> torch.Tensor:
    """The loss of a batch that an augmentation may have mixed.

    `targets` are per-sample along dim 0: hard labels (N,), soft labels (N, classes) that
    belong to the unmixed images (mode S), or a tuple of such tensors (soft labels with
    their hard labels, for `mse_gt`), permuted together. In mode M the teacher labels the
    mixed images themselves, so only the hard labels the loss may use need mixing.
    """
    if mix is None:
        return loss_fn(output, targets)
    if isinstance(targets, tuple):
        permuted = tuple(t[mix.perm] for t in targets)
    else:
        permuted = targets[mix.perm]
    return mix.lam * loss_fn(output, targets) + (1.0 - mix.lam) * loss_fn(output, permuted)
