"""Building set files (the common form of rdm subsets, reference sets and syn sets)."""

from __future__ import annotations

import torch

from ddrank_steps.errors import InputError


def class_indices(labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    return [torch.nonzero(labels == c).flatten() for c in range(num_classes)]


def draw_per_class(
    labels: torch.Tensor, num_classes: int, ipc: int, seed: int, source: str
) -> torch.Tensor:
    """`ipc` distinct indices of each class, classes in order, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c, idx in enumerate(class_indices(labels, num_classes)):
        if len(idx) < ipc:
            raise InputError(
                source,
                f"class {c}",
                f"has {len(idx)} training images, fewer than ipc={ipc}",
                "lower the method's ipc",
            )
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
    return torch.cat(chosen)


def make_set(images: torch.Tensor, labels: torch.Tensor, info: dict, **extra) -> dict:
    blob = {
        "images": images.float().contiguous(),
        "labels": labels.long().contiguous(),
        "info": info,
    }
    blob.update({k: v for k, v in extra.items() if v is not None})
    return blob
