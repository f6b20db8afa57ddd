"""A prepared dataset's cache: its splits stored once, with their statistics.

`prepare` writes `data.pt` and `meta.json` (classes, shape, value range, normalisation
mean/std and where they came from, storage). Splits stored in one file (digits, CIFAR,
MNIST, SVHN) are cached as their lossless uint8 tensors. Splits of image files
(TinyImageNet, ImageNet, ImageFolder trees) are decoded once into uint8 tensors when the
whole dataset fits in `cache_limit_gb` (default 2 GB) as uint8, so training reads one
file; a larger one (ImageNet-1K: ~190 GB at 224 px) is stored as an index of its files
(root, paths, labels, size) and streamed from disk during training.

With `val_fraction`, a stratified, seeded share of each class of the train split is held
out as the `val` split (for `select: val`).

With `zca`, the dataset-level ZCA whitening (kornia's formula, `zca_eps`, as the
reference's use_zca) is fitted here on the train split and stored in data.pt under `zca`;
every split then loads whitened. It is fitted in the reference's space: pixels scaled to
[0, 1] without mean/std normalisation (ToTensor only, as the reference does for CIFAR and
TinyImageNet, and so for every source here), except the ImageNet sources, which the
reference normalises even with ZCA. meta.json records `zca`, `zca_eps` and `zca_input`.
Only cached datasets can have it: whitening needs every train image in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ddrank_steps.data.datasets import (
    SOURCES,
    FileSplit,
    PixelSplit,
    RawDataset,
    image_side,
    load_source,
)
from ddrank_steps.data.datasets.imagenet import IMAGENET_SOURCES
from ddrank_steps.data.image_files import RESIZE_RULE
from ddrank_steps.data.training_inputs import DatasetMeta, zca_input
from ddrank_steps.data.zca import DEFAULT_EPS, fit_zca
from ddrank_steps.errors import ConfigError
from ddrank_steps.runtime.atomic_write import save_torch, write_json
from ddrank_steps.seeding import derive_seed

log = logging.getLogger("ddrank.dataset_cache")

DEFAULT_CACHE_LIMIT_GB = 2.0
STATS_SAMPLE = 5000  # images whose statistics stand for a streamed split without given ones
# Sources the reference normalises before ZCA (its ImageNet pipelines normalise always);
# every other source is whitened from [0, 1] pixels (its ToTensor-only ZCA pipeline).
NORMALISED_BEFORE_ZCA = IMAGENET_SOURCES

Part = PixelSplit | FileSplit


def val_mask(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A stratified, seeded share of each class."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        n_val = int(round(len(idx) * fraction))
        mask[idx[torch.randperm(len(idx), generator=g)[:n_val]]] = True
    return mask


def subset(split: Part, mask: torch.Tensor) -> Part:
    if isinstance(split, FileSplit):
        keep = torch.nonzero(mask).flatten().tolist()
        return FileSplit(split.root, [split.paths[i] for i in keep], split.labels[mask], split.size)
    return PixelSplit(split.images[mask], split.labels[mask])


def split_off_val(train, fraction: float, seed: int):
    """Hold out a stratified share of the train split for `select: val`."""
    mask = val_mask(train.labels, fraction, seed)
    return subset(train, ~mask), subset(train, mask)


def channel_stats(images: torch.Tensor, max_value: float) -> tuple[list[float], list[float]]:
    x = images.float() / max_value
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def uint8_bytes(split: Part) -> int:
    if isinstance(split, FileSplit):
        return len(split.paths) * 3 * split.size * split.size
    return split.images.numel()


def decoded(split: FileSplit, workers: int) -> PixelSplit:
    from ddrank_steps.data.streaming import FileDataset, decode_files

    dataset = FileDataset(split.root, split.paths, split.size)
    return PixelSplit(decode_files(dataset, list(range(len(dataset))), workers), split.labels)


def sample_stats(train: FileSplit, max_value: float, workers: int, seed: int):
    """Statistics of a seeded sample of a streamed train split (decoding it all would
    read the whole dataset just for six numbers)."""
    from ddrank_steps.data.streaming import FileDataset, decode_files

    g = torch.Generator().manual_seed(seed)
    n = min(len(train.paths), STATS_SAMPLE)
    idx = torch.randperm(len(train.paths), generator=g)[:n].sort().values.tolist()
    pixels = decode_files(FileDataset(train.root, train.paths, train.size), idx, workers)
    return channel_stats(pixels, max_value)


def stored(split: Part, files: FileSplit | None) -> dict:
    """The data.pt form of a split: tensors (with their source files when decoded from
    files), or the index of a streamed split."""
    if isinstance(split, FileSplit):
        return {
            "root": split.root,
            "paths": split.paths,
            "size": split.size,
            "labels": split.labels,
        }
    part = {"images": split.images, "labels": split.labels}
    if files is not None:
        part["root"], part["files"] = files.root, files.paths
    return part


# --- the steps of `prepare` ------------------------------------------------------------------


def with_val_split(name: str, settings: dict, raw: RawDataset) -> tuple[dict[str, Part], float]:
    """The splits to store (train, test, and val when `val_fraction` > 0) and the fraction."""
    train, val = raw.train, None
    val_fraction = float(settings.get("val_fraction", 0.0))
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"datasets.{name}.val_fraction must be in [0, 1); got {val_fraction}")
    if val_fraction > 0:
        train, val = split_off_val(train, val_fraction, derive_seed("val-split", name))
    splits = {"train": train, "test": raw.test}
    if val is not None:
        splits["val"] = val
    return splits, val_fraction


@dataclass
class Storage:
    """How the splits are stored: `cached` tensors or `streamed` from their files."""

    kind: str
    limit_gb: float  # the dataset's cache_limit_gb
    size_bytes: int  # every split together, as uint8


def choose_storage(name: str, settings: dict, splits: dict[str, Part]) -> Storage:
    """Cached, unless the splits are image files larger than `cache_limit_gb` as uint8."""
    limit_gb = settings.get("cache_limit_gb")
    limit_gb = DEFAULT_CACHE_LIMIT_GB if limit_gb is None else float(limit_gb)
    if limit_gb < 0:
        raise ConfigError(f"datasets.{name}.cache_limit_gb must be >= 0; got {limit_gb}")
    size_bytes = sum(uint8_bytes(s) for s in splits.values())
    from_files = isinstance(splits["train"], FileSplit)
    kind = "streamed" if from_files and size_bytes > limit_gb * 1e9 else "cached"
    log.info("%s: %.3f GB as uint8, cache limit %g GB: %s", name, size_bytes / 1e9, limit_gb, kind)
    return Storage(kind, limit_gb, size_bytes)


def given_stats(settings: dict, source_mean, source_std) -> tuple[list, list, str] | None:
    """(mean, std, where they came from) when the config or the source gives them; None
    when they are measured on the train split."""
    if settings.get("mean") and settings.get("std"):
        return list(settings["mean"]), list(settings["std"]), "config"
    if source_mean is not None:
        return list(source_mean), list(source_std), "source"
    return None


def normalisation(
    name: str, settings: dict, raw: RawDataset, train: Part, storage: Storage, workers: int
) -> tuple[list[float], list[float], str]:
    """(mean, std, where they came from): the config's, the source's, or measured on the
    train split (on a seeded sample of a streamed one)."""
    given = given_stats(settings, raw.mean, raw.std)
    if given is not None:
        return given
    if storage.kind == "cached":
        mean, std = channel_stats(train.images, raw.max_value)
        return mean, std, "train split"
    seed = derive_seed("stats-sample", name)
    mean, std = sample_stats(train, raw.max_value, workers, seed)
    return mean, std, f"train sample ({min(len(train.paths), STATS_SAMPLE)} images)"


def image_shape(
    name: str, train: Part, mean: list[float], std: list[float]
) -> tuple[int, int, int]:
    """(channels, height, width) of the stored images, checked against the statistics."""
    if isinstance(train, FileSplit):
        channels, height, width = 3, train.size, train.size
    else:
        channels, height, width = (int(d) for d in train.images.shape[1:])
    check_stats(name, channels, mean, std)
    return channels, height, width


def check_stats(name: str, channels: int, mean: list[float], std: list[float]) -> None:
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"datasets.{name}.mean/std need {channels} values (one per channel); "
            f"got {len(mean)} and {len(std)}"
        )


def meta_before_preparing(
    name: str, settings: dict, need_class_names: bool = False
) -> DatasetMeta | None:
    """What `prepare` will write to meta.json that a set is checked against (class count,
    image shape, mean/std, zca), when the settings and the source's `Facts` tell it
    without reading the dataset; None when only preparing tells: a source without facts
    (TinyImageNet, ImageNet-1K, ImageFolder: classes from their files), statistics
    measured on the train split (digits, unless the config gives mean/std), or class
    names read from the files when `need_class_names` (a class-folder set is matched to
    them). Without `need_class_names`, unknown names are left empty."""
    source = SOURCES.get(settings.get("source"))
    facts = source.facts if source is not None else None
    if facts is None:
        return None
    stats = given_stats(settings, facts.mean, facts.std)
    if stats is None or (need_class_names and facts.classes is None):
        return None
    mean, std, _ = stats
    check_stats(name, facts.channels, mean, std)
    side = image_side(settings)
    return DatasetMeta(
        name=name,
        num_classes=facts.num_classes,
        channels=facts.channels,
        height=side,
        width=side,
        mean=mean,
        std=std,
        max_value=facts.max_value,
        classes=list(facts.classes or ()),
        zca=bool(settings.get("zca")),
    )


def zca_settings(name: str, settings: dict, storage: Storage) -> tuple[bool, float]:
    """(zca on, its eps), checked: ZCA needs a cached dataset and eps > 0."""
    zca_on = bool(settings.get("zca"))
    if zca_on and storage.kind == "streamed":
        raise ConfigError(
            f"datasets.{name}.zca needs a cached dataset, but {name} is streamed from disk "
            f"({storage.size_bytes / 1e9:.1f} GB as uint8 > cache_limit_gb "
            f"{storage.limit_gb:g}): whitening needs every train image in memory. Raise "
            "cache_limit_gb, use a smaller image_size, or set zca: false"
        )
    zca_eps = settings.get("zca_eps")
    zca_eps = DEFAULT_EPS if zca_eps is None else float(zca_eps)
    if zca_on and not zca_eps > 0:
        raise ConfigError(f"datasets.{name}.zca_eps must be > 0; got {zca_eps}")
    return zca_on, zca_eps


def add_zca(
    name: str, settings: dict, zca_eps: float, train: PixelSplit, blob: dict, meta: dict
) -> None:
    """Fit the ZCA whitening on the train split; store the fit in `blob`, record it in
    `meta`."""
    meta["zca"] = True
    meta["zca_eps"] = zca_eps
    normalised_first = settings["source"] in NORMALISED_BEFORE_ZCA
    meta["zca_input"] = "normalised" if normalised_first else "pixels"
    device = "cuda" if torch.cuda.is_available() else None
    fit = fit_zca(zca_input(train.images, DatasetMeta.from_dict(meta)), zca_eps, device)
    blob["zca"] = fit.to_dict()
    meta["zca_reference"] = dict(fit.reference)
    log.info(
        "%s: ZCA (eps %g) fitted on %d train images (%s); neighbour correlation %s",
        name,
        zca_eps,
        len(train.labels),
        meta["zca_input"],
        fit.reference,
    )


def prepare(name: str, settings: dict, data_out: str, meta_out: str, workers: int = 0) -> dict:
    """Build the cache of dataset `name` from its config `settings`: write `data_out`
    (data.pt) and `meta_out` (meta.json); return the meta. `workers` processes decode
    image files."""
    raw = load_source(settings["source"], settings)
    splits, val_fraction = with_val_split(name, settings, raw)
    storage = choose_storage(name, settings, splits)
    files = {k: s for k, s in splits.items() if isinstance(s, FileSplit)}
    if storage.kind == "cached":
        splits = {k: decoded(s, workers) if k in files else s for k, s in splits.items()}
    train = splits["train"]
    mean, std, stats_from = normalisation(name, settings, raw, train, storage, workers)
    channels, height, width = image_shape(name, train, mean, std)
    zca_on, zca_eps = zca_settings(name, settings, storage)

    blob = {split: stored(part, files.get(split)) for split, part in splits.items()}
    meta = {
        "name": name,
        "source": settings["source"],
        "num_classes": len(raw.classes),
        "classes": raw.classes,
        "channels": channels,
        "height": height,
        "width": width,
        "max_value": raw.max_value,
        "mean": mean,
        "std": std,
        "stats_from": stats_from,
        "sizes": {split: len(part["labels"]) for split, part in blob.items()},
        "val_fraction": val_fraction,
        "storage": storage.kind,
        "uint8_bytes": storage.size_bytes,
        "notes": raw.notes,
    }
    if "train" in files:  # image files: how they were sized and stored
        meta["cache_limit_gb"] = storage.limit_gb
        meta["resize"] = RESIZE_RULE
    if zca_on:
        add_zca(name, settings, zca_eps, train, blob, meta)
    save_torch(data_out, blob)
    write_json(meta_out, meta)
    log.info("prepared %s (%s): %s", name, storage.kind, meta["sizes"])
    return meta
