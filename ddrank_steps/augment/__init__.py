"""Batch augmentations, applied on device to each training batch after loading.

Each augmentation is built from a name and a params dict through `AUGMENTATIONS`, so a new
one only adds a factory here. An augmentation takes the batch and a `torch.Generator` on the
batch's device, and returns the augmented batch plus an optional `Mix` telling the trainer how
to mix the labels to match (`mixed_loss` applies it).

ZCA whitening is not a batch augmentation here: it is a dataset-level transform fitted once on
the real train split (ddrank_steps/zca.py). The reference's per-batch `zca` aug re-fits on every
batch, where the covariance of a batch much smaller than the pixel count is singular.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ddrank_steps.augment.base import BatchAugmentation, Mix, mixed_loss
from ddrank_steps.augment.cutmix import Cutmix
from ddrank_steps.augment.dsa import DSA
from ddrank_steps.augment.mixup import Mixup
from ddrank_steps.errors import ConfigError

AugmentationFactory = Callable[[Mapping[str, object] | None], BatchAugmentation]

AUGMENTATIONS: dict[str, AugmentationFactory] = {
    "dsa": DSA,
    "mixup": Mixup,
    "cutmix": Cutmix,
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
        hint = ""
        if isinstance(name, str) and name.lower() == "zca":
            hint = (
                " (ZCA whitening is a dataset-level transform fitted on the real train split, "
                "not a batch augmentation)"
            )
        raise ConfigError(f"augmentation {name!r} is unknown{hint}; valid names: {valid}")
    return factory(params)


__all__ = [
    "AUGMENTATIONS",
    "DSA",
    "BatchAugmentation",
    "Cutmix",
    "Mix",
    "Mixup",
    "available_augmentations",
    "build_augmentation",
    "mixed_loss",
]
