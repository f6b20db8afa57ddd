"""Batch augmentations, applied on device to each training batch after loading.

Each augmentation is built from a name and a params dict through `AUGMENTATIONS`, so a new
one (mixup, cutmix, zca) only adds a factory here. An augmentation takes the batch and a
`torch.Generator` on the batch's device, and returns the augmented batch plus an optional
`Mix` telling the trainer how to mix the labels to match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ddrank_steps.augment.base import BatchAugmentation, Mix
from ddrank_steps.augment.dsa import DSA
from ddrank_steps.errors import ConfigError

AugmentationFactory = Callable[[Mapping[str, object] | None], BatchAugmentation]

__all__ = [
    "AUGMENTATIONS",
    "BatchAugmentation",
    "Mix",
    "available_augmentations",
    "build_augmentation",
]

AUGMENTATIONS: dict[str, AugmentationFactory] = {
    "dsa": DSA,
}

# Spellings of "no augmentation".
_NONE_NAMES = ("none",)


def available_augmentations() -> list[str]:
    return sorted(AUGMENTATIONS)


def build_augmentation(
    name: str | None, params: Mapping[str, object] | None
) -> BatchAugmentation | None:
    """The augmentation called `name` built from `params`; None for no augmentation."""
    if name is None or (isinstance(name, str) and name.lower() in _NONE_NAMES):
        return None
    factory = AUGMENTATIONS.get(name.lower()) if isinstance(name, str) else None
    if factory is None:
        valid = ", ".join(["none", *available_augmentations()])
        raise ConfigError(f"augmentation {name!r} is unknown; valid names: {valid}")
    return factory(params)


__all__ = [
    "AUGMENTATIONS",
    "DSA",
    "BatchAugmentation",
    "Mix",
    "available_augmentations",
    "build_augmentation",
]
