"""Dataset registry: each source turns its on-disk (or embedded) form into split tensors.

A source returns a `RawDataset`: uint8-or-float images in [0, max_value], int64
labels, for a train and a test split. The prepare stage caches it once; training
normalises with the dataset's mean/std when it loads the cache. Sources so far:
the embedded digits and torchvision's CIFAR-10/100 python format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ddrank_steps.errors import ConfigError


@dataclass
class Split:
    images: object  # torch.Tensor (N, C, H, W), uint8 or float, values in [0, max_value]
    labels: object  # torch.Tensor (N,) int64 in [0, num_classes)


@dataclass
class RawDataset:
    name: str
    classes: list[str]
    max_value: float
    train: Split
    test: Split
    mean: list[float] | None = None  # None: computed from the train split
    std: list[float] | None = None
    notes: dict = field(default_factory=dict)


SOURCES: dict[str, Callable[[dict], RawDataset]] = {}


def register_source(name: str, loader: Callable[[dict], RawDataset]) -> None:
    SOURCES[name] = loader


def load_source(name: str, settings: dict) -> RawDataset:
    if name not in SOURCES:
        raise ConfigError(
            f"datasets.*.source '{name}' is unknown; valid sources: {sorted(SOURCES)}"
        )
    return SOURCES[name](settings)


def _register_builtin() -> None:
    from ddrank_steps.datasets import cifar, digits

    register_source("digits", digits.load)
    register_source("CIFAR10", cifar.load_cifar10)
    register_source("CIFAR100", cifar.load_cifar100)


_register_builtin()
