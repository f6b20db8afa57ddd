"""Dataset registry: each source turns its on-disk (or embedded) form into splits.

A source returns a `RawDataset` whose train and test splits are either
- a `PixelSplit`: uint8-or-float pixel tensors in [0, max_value] (digits, CIFAR, MNIST, SVHN:
  formats that store pixels in one file), or
- a `FileSplit`: image files and their labels (TinyImageNet, the ImageNet family, any
  ImageFolder tree), decoded later by `image_files.decode` to uint8 (3, S, S).

The prepare stage caches a dataset once: tensors as they are; file splits decoded into
tensors when they are small (≤ `cache_limit_gb` as uint8), otherwise as an index of
files that training streams with a DataLoader. Training normalises with the dataset's
mean/std when it loads the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ddrank_steps.errors import ConfigError, InputError


@dataclass
class PixelSplit:
    images: object  # torch.Tensor (N, C, H, W), uint8 or float, values in [0, max_value]
    labels: object  # torch.Tensor (N,) int64 in [0, num_classes)


@dataclass
class FileSplit:
    """Image files on disk, in dataset order, with their labels."""

    root: str  # absolute folder that `paths` are relative to
    paths: list[str]
    labels: object  # torch.Tensor (N,) int64 in [0, num_classes)
    size: int  # decoded to (3, size, size): shorter side resized, centre crop


@dataclass
class RawDataset:
    name: str
    classes: list[str]
    max_value: float
    train: PixelSplit | FileSplit
    test: PixelSplit | FileSplit
    mean: list[float] | None = None  # None: computed from the train split
    std: list[float] | None = None
    notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What a source's prepared meta.json will say that is known from its name alone, no
    file read: what a set is checked against before its dataset is prepared (the image side
    is `image_side`). The loader's RawDataset states the same values; a test checks that
    each source's facts match what preparing writes."""

    num_classes: int
    channels: int
    max_value: float
    mean: tuple[float, ...] | None = None  # None: measured on the train split
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None  # None: read from the dataset's files


@dataclass(frozen=True)
class Source:
    loader: Callable[[dict], RawDataset]
    files: bool = False  # yields FileSplits (decoded at prepare time, streamable)
    options: frozenset[str] = frozenset()  # optional dataset keys only this source reads
    requires: frozenset[str] = frozenset()  # keys it cannot do without
    # the side of its images: fixed for pixel formats, the default of image_size for files
    size: int | None = None
    # checks, before any job runs, that the files are where the settings say (cheap: no
    # image is read); None for a dataset that ships with a package
    check_layout: Callable[[dict], None] | None = None
    # what its prepared meta will say, known before preparing; None when the class count
    # or the image shape comes from the files (TinyImageNet's wnids.txt, ImageNet-1K's and
    # ImageFolder's class folders)
    facts: Facts | None = None


SOURCES: dict[str, Source] = {}

# Dataset keys that belong to one kind of source; they default to null in the schema,
# so a non-null value given to a source that ignores it is a mistake worth reporting.
SOURCE_SPECIFIC_KEYS = ("image_size", "classes")


def register_source(
    name: str,
    loader: Callable[[dict], RawDataset],
    files: bool = False,
    options: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    size: int | None = None,
    check_layout: Callable[[dict], None] | None = None,
    facts: Facts | None = None,
) -> None:
    SOURCES[name] = Source(
        loader, files, frozenset(options), frozenset(requires), size, check_layout, facts
    )


def check_settings(name: str, settings: dict, where: str = "datasets.<name>") -> Source:
    """The source of a dataset's settings, with the keys it cannot use or needs checked."""
    if name not in SOURCES:
        raise ConfigError(f"{where}.source '{name}' is unknown; valid sources: {sorted(SOURCES)}")
    source = SOURCES[name]
    for key in SOURCE_SPECIFIC_KEYS:
        if settings.get(key) is not None and key not in source.options:
            users = sorted(n for n, s in SOURCES.items() if key in s.options)
            raise ConfigError(
                f"{where}.{key} is not used by source {name} (only by {users}); remove it"
            )
    for key in sorted(source.requires):
        if settings.get(key) is None:
            raise ConfigError(f"{where}.{key} is required for source {name}")
    return source


def image_side(settings: dict) -> int | None:
    """The side of a dataset's (square) images as training sees them: image_size or the
    source's own (None when neither is known)."""
    source = SOURCES.get(settings.get("source"))
    return settings.get("image_size") or (source.size if source else None)


def check_layout(settings: dict, where: str) -> None:
    """The source's files are where the settings say, before any job runs; the error names
    the dataset (`where`, e.g. datasets.cifar10) instead of the loaders' placeholder."""
    source = check_settings(settings["source"], settings, where)
    if source.check_layout is None:
        return
    try:
        source.check_layout(settings)
    except (ConfigError, InputError) as exc:
        text = str(exc).replace("datasets.<name>", where)
        raise ConfigError(f"{where}: {text}") from None


def load_source(name: str, settings: dict) -> RawDataset:
    return check_settings(name, settings).loader(settings)


def prepare_settings(settings: dict) -> dict:
    """The settings the prepared cache depends on: without `num_workers` (how fast, not
    what), without `cache_limit_gb` for sources that are always cached whole, and without
    `zca`/`zca_eps` when ZCA is off (so adding those keys reran no existing dataset)."""
    out = {k: v for k, v in settings.items() if k != "num_workers"}
    if not out.get("zca"):
        out.pop("zca", None)
        out.pop("zca_eps", None)
    source = SOURCES.get(settings.get("source"))
    if source is not None and not source.files:
        out.pop("cache_limit_gb", None)
    return out


def _register_builtin() -> None:
    """Every source of this package, each registered by its own module (its names, image
    side, options and layout check), in this order."""
    from ddrank_steps.data.datasets import (
        cifar,
        digits,
        folder,
        imagenet,
        mnist,
        svhn,
        tinyimagenet,
    )

    for module in (digits, cifar, mnist, svhn, tinyimagenet, imagenet, folder):
        module.register()


_register_builtin()
