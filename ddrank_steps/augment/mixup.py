"""Mixup (Zhang et al. 2018), per batch, as DD-Ranking's (SRe2L's): one λ ~ Beta(α, α) and one
permutation per batch, images x' = λ·x + (1 − λ)·x[perm].

Unlike the reference, the labels are mixed too: the returned `Mix(perm, λ)` makes the trainer's
loss λ·L(out, y) + (1 − λ)·L(out, y[perm]) for hard labels and per-sample soft labels (mode S);
in mode M the teacher labels the mixed images and the trainer can ignore the Mix. And the
batch is mixed only with probability `p` (else returned unchanged, with no Mix). Parameters
and their reference spellings: see augment/mixing.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ddrank_steps.augment.base import Mix
from ddrank_steps.augment.mixing import check_inputs, draw_batch, parse_mix_params, permutation

ALIASES = {"lambda": "alpha", "mixup_p": "p"}
DEFAULT_ALPHA = 0.8  # the reference's documented example, {'lambda': 0.8}


def mixup(images: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    return lam * images + (1.0 - lam) * images[perm]


class Mixup:
    """Batch augmentation: `mixup(images, generator) -> (mixed, Mix | None)`."""

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params = parse_mix_params("Mixup", params, ALIASES, DEFAULT_ALPHA)

    def __repr__(self) -> str:
        return f"Mixup({self.params})"

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Mix | None]:
        check_inputs("Mixup", images, generator)
        draw = draw_batch(self.params, generator, images.device)
        if not draw.mix:
            return images, None
        perm = permutation(images.shape[0], generator, images.device)
        return mixup(images, perm, draw.lam), Mix(perm, draw.lam)
