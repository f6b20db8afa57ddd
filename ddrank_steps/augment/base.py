"""The interface every batch augmentation implements (kept apart to avoid import cycles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
