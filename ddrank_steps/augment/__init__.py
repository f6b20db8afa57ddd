"""Batch augmentations, applied on device to each training batch after loading.

Each augmentation is built from a name and a params dict through `AUGMENTATIONS`, so a new
one only adds a factory here. An augmentation takes the batch and a `torch.Generator` on the
batch's device, and returns the augmented batch plus an optional `Mix` telling the trainer how
to mix the labels to match (`mixed_loss` applies it).

ZCA whitening is not a batch augmentation here: it is a dataset-level transform fitted once on
the real train split (ddrank_steps/data/zca.py). The reference's per-batch `zca` aug re-fits on
every batch, where the covariance of a batch much smaller than the pixel count is singular.

The built-in augmentations' modules are imported on first use (`AUGMENTATION_CLASSES`,
through importlib), so a training job's code inputs (ddrank_steps/planning/code_inputs.py) name only
the augmentation its protocol uses.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping

from ddrank_steps.augment.base import BatchAugmentation, Mix, mixed_loss
from ddrank_steps.errors import ConfigError

AugmentationFactory = Callable[[Mapping[str, object] | None], BatchAugmentation]

# name -> (its module under ddrank_steps.augment, its class there). Plain strings (no import
# statement names them), so the static import walk of code_inputs leaves them out of the
# code inputs of jobs that do not use them. A literal: code_inputs reads it from this file
# without importing the package (which imports torch).
AUGMENTATION_CLASSES = {
    "dsa": ("dsa", "DSA"),
    "mixup": ("mixup", "Mixup"),
    "cutmix": ("cutmix", "Cutmix"),
}


def _load_class(module: str, cls: str) -> type:
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def _lazy_factory(module: str, cls: str) -> AugmentationFactory:
    def factory(params: Mapping[str, object] | None) -> BatchAugmentation:
        return _load_class(module, cls)(params)

    factory.__name__ = factory.__qualname__ = cls
    return factory


AUGMENTATIONS: dict[str, AugmentationFactory] = {
    name: _lazy_factory(module, cls) for name, (module, cls) in AUGMENTATION_CLASSES.items()
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


def __getattr__(name: str):
    # `from ddrank_steps.augment import DSA` and the like: the class, its module loaded now.
    for module, cls in AUGMENTATION_CLASSES.values():
        if name == cls:
            return _load_class(module, cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def canonical_augmentation(name: str | None, params: Mapping[str, object] | None):
    """(name, every parameter with the value it takes): defaults filled in and the
    reference's spellings turned into ours (`beta` -> `alpha`, `ratio_scale` -> `scale`), so
    equal augmentations key the same run."""
    augmentation = build_augmentation(name, params)
    if augmentation is None:
        return "none", {}
    return name.lower(), dataclasses.asdict(augmentation.params)
