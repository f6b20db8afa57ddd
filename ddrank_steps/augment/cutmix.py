"""Cutmix (Yun et al. 2019), per batch, as DD-Ranking's (SRe2L's): one λ ~ Beta(α, α), one
permutation and one box per batch; the box's pixels of every image come from its partner
x[perm].

The box, as the reference draws it: sides int(H·√(1 − λ)) and int(W·√(1 − λ)), centre
uniform over the pixels, spanning [centre − side // 2, centre + side // 2) on each axis and
clipped at the border.

Unlike the reference:
- the labels are mixed too, through the returned `Mix(perm, λ')` (see augment/mixup.py for
  how the trainer uses it in each label mode);
- λ' is the share of each image actually kept, 1 − box area / (H·W), after clipping: a box
  cut by the border pastes less than 1 − λ, and the label weights must follow the pixels (the
  reference never mixes labels, so it never needed the correction);
- the batch is mixed only with probability `p`, else returned unchanged with no Mix;
- the input tensor is not modified in place.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ddrank_steps.augment.base import Mix
from ddrank_steps.augment.mixing import check_inputs, draw_batch, parse_mix_params, permutation

ALIASES = {"beta": "alpha", "cutmix_p": "p"}
DEFAULT_ALPHA = 1.0  # the reference's demo, {'beta': 1.0}

Box = tuple[int, int, int, int]  # top, bottom, left, right: rows [top, bottom), cols [left, right)


def cutmix_box(height: int, width: int, lam: float, centre_h: int, centre_w: int) -> Box:
    ratio = (1.0 - lam) ** 0.5
    half_h, half_w = int(height * ratio) // 2, int(width * ratio) // 2
    top, bottom = max(centre_h - half_h, 0), min(centre_h + half_h, height)
    left, right = max(centre_w - half_w, 0), min(centre_w + half_w, width)
    return top, bottom, left, right


def kept_share(height: int, width: int, box: Box) -> float:
    """λ': the share of each image that is still its own after pasting `box`."""
    top, bottom, left, right = box
    return 1.0 - (bottom - top) * (right - left) / (height * width)


def paste(images: torch.Tensor, perm: torch.Tensor, box: Box) -> torch.Tensor:
    top, bottom, left, right = box
    out = images.clone()
    out[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
    return out


class Cutmix:
    """Batch augmentation: `cutmix(images, generator) -> (mixed, Mix | None)`."""

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params = parse_mix_params("Cutmix", params, ALIASES, DEFAULT_ALPHA)

    def __repr__(self) -> str:
        return f"Cutmix({self.params})"

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Mix | None]:
        check_inputs("Cutmix", images, generator)
        draw = draw_batch(self.params, generator, images.device, n_extra=2)
        if not draw.mix:
            return images, None
        _, _, height, width = images.shape
        u_h, u_w = draw.extra
        centre_h = min(int(u_h * height), height - 1)  # uniform over rows, as randint(H)
        centre_w = min(int(u_w * width), width - 1)
        box = cutmix_box(height, width, draw.lam, centre_h, centre_w)
        perm = permutation(images.shape[0], generator, images.device)
        return paste(images, perm, box), Mix(perm, kept_share(height, width, box))
