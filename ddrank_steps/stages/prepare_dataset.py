"""Stage prepare_dataset: cache a real dataset's splits once, with its statistics.

Output: `data.pt` and `meta.json` (classes, shape, value range, normalisation mean/std
and where they came from, storage). Splits stored in one file (digits, CIFAR, MNIST,
SVHN) are cached as their lossless uint8 tensors. Splits of image files (TinyImageNet,
ImageNet, ImageFolder trees) are decoded once into uint8 tensors when the whole dataset
fits in `cache_limit_gb` (default 2 GB) as uint8, so training reads one file; a larger
one (ImageNet-1K: ~190 GB at 224 px) is stored as an index of its files (root, paths,
labels, size) and streamed from disk during training.

With `zca`, the dataset-level ZCA whitening (kornia's formula, `zca_eps`, as the
reference's use_zca) is fitted here on the train split and stored in data.pt under `zca`;
every split then loads whitened. It is fitted in the reference's space: pixels scaled to
[0, 1] without mean/std normalisation (ToTensor only, as the reference does for CIFAR and
TinyImageNet, and so for every source here), except the ImageNet sources, which the
reference normalises even with ZCA. meta.json records `zca`, `zca_eps` and `zca_input`.
Only cached datasets can have it: whitening needs every train image in memory.
"""

from __future__ import annotations

import argparse
import logging

import torch

from ddrank_steps import cli
from ddrank_steps.artifacts import DatasetMeta, zca_input
from ddrank_steps.datasets import FileSplit, PixelSplit, load_source
from ddrank_steps.datasets.imagenet import IMAGENET_SOURCES
from ddrank_steps.errors import ConfigError
from ddrank_steps.image_files import RESIZE_RULE
from ddrank_steps.io import save_torch, write_json
from ddrank_steps.seeding import derive_seed
from ddrank_steps.zca import DEFAULT_EPS, fit_zca

log = logging.getLogger("ddrank.prepare_dataset")

DEFAULT_CACHE_LIMIT_GB = 2.0
STATS_SAMPLE = 5000  # images whose statistics stand for a streamed split without given ones
# Sources the reference normalises before ZCA (its ImageNet pipelines normalise always);
# every other source is whitened from [0, 1] pixels (its ToTensor-only ZCA pipeline).
NORMALISED_BEFORE_ZCA = IMAGENET_SOURCES


def val_mask(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A stratified, seeded share of each class."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        n_val = int(round(len(idx) * fraction))
        mask[idx[torch.randperm(len(idx), generator=g)[:n_val]]] = True
    return mask


def subset(split: PixelSplit | FileSplit, mask: torch.Tensor) -> PixelSplit | FileSplit:
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


def uint8_bytes(split: PixelSplit | FileSplit) -> int:
    if isinstance(split, FileSplit):
        return len(split.paths) * 3 * split.size * split.size
    return split.images.numel()


def decoded(split: FileSplit, workers: int) -> PixelSplit:
    from ddrank_steps.streaming import FileDataset, decode_files

    dataset = FileDataset(split.root, split.paths, split.size)
    return PixelSplit(decode_files(dataset, list(range(len(dataset))), workers), split.labels)


def sample_stats(train: FileSplit, max_value: float, workers: int, seed: int):
    """Statistics of a seeded sample of a streamed train split (decoding it all would
    read the whole dataset just for six numbers)."""
    from ddrank_steps.streaming import FileDataset, decode_files

    g = torch.Generator().manual_seed(seed)
    n = min(len(train.paths), STATS_SAMPLE)
    idx = torch.randperm(len(train.paths), generator=g)[:n].sort().values.tolist()
    pixels = decode_files(FileDataset(train.root, train.paths, train.size), idx, workers)
    return channel_stats(pixels, max_value)


def stored(split: PixelSplit | FileSplit, files: FileSplit | None) -> dict:
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


def prepare(name: str, settings: dict, data_out: str, meta_out: str, workers: int = 0) -> dict:
    raw = load_source(settings["source"], settings)
    train, val = raw.train, None
    val_fraction = float(settings.get("val_fraction", 0.0))
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"datasets.{name}.val_fraction must be in [0, 1); got {val_fraction}")
    if val_fraction > 0:
        train, val = split_off_val(train, val_fraction, derive_seed("val-split", name))
    splits = {"train": train, "test": raw.test}
    if val is not None:
        splits["val"] = val

    limit_gb = settings.get("cache_limit_gb")
    limit_gb = DEFAULT_CACHE_LIMIT_GB if limit_gb is None else float(limit_gb)
    if limit_gb < 0:
        raise ConfigError(f"datasets.{name}.cache_limit_gb must be >= 0; got {limit_gb}")
    size_bytes = sum(uint8_bytes(s) for s in splits.values())
    from_files = isinstance(train, FileSplit)
    storage = "streamed" if from_files and size_bytes > limit_gb * 1e9 else "cached"
    log.info(
        "%s: %.3f GB as uint8, cache limit %g GB: %s", name, size_bytes / 1e9, limit_gb, storage
    )
    files = {k: s for k, s in splits.items() if isinstance(s, FileSplit)}
    if storage == "cached":
        splits = {k: decoded(s, workers) if k in files else s for k, s in splits.items()}
    train = splits["train"]

    if settings.get("mean") and settings.get("std"):
        mean, std, stats_from = list(settings["mean"]), list(settings["std"]), "config"
    elif raw.mean is not None:
        mean, std, stats_from = raw.mean, raw.std, "source"
    elif storage == "cached":
        mean, std = channel_stats(train.images, raw.max_value)
        stats_from = "train split"
    else:
        seed = derive_seed("stats-sample", name)
        mean, std = sample_stats(train, raw.max_value, workers, seed)
        stats_from = f"train sample ({min(len(train.paths), STATS_SAMPLE)} images)"
    if isinstance(train, FileSplit):
        channels, height, width = 3, train.size, train.size
    else:
        channels, height, width = (int(d) for d in train.images.shape[1:])
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"datasets.{name}.mean/std need {channels} values (one per channel); "
            f"got {len(mean)} and {len(std)}"
        )

    zca_on = bool(settings.get("zca"))
    if zca_on and storage == "streamed":
        raise ConfigError(
            f"datasets.{name}.zca needs a cached dataset, but {name} is streamed from disk "
            f"({size_bytes / 1e9:.1f} GB as uint8 > cache_limit_gb {limit_gb:g}): whitening "
            "needs every train image in memory. Raise cache_limit_gb, use a smaller "
            "image_size, or set zca: false"
        )
    zca_eps = settings.get("zca_eps")
    zca_eps = DEFAULT_EPS if zca_eps is None else float(zca_eps)
    if zca_on and not zca_eps > 0:
        raise ConfigError(f"datasets.{name}.zca_eps must be > 0; got {zca_eps}")

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
        "storage": storage,
        "uint8_bytes": size_bytes,
        "notes": raw.notes,
    }
    if from_files:
        meta["cache_limit_gb"] = limit_gb
        meta["resize"] = RESIZE_RULE
    if zca_on:
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
    save_torch(data_out, blob)
    write_json(meta_out, meta)
    log.info("prepared %s (%s): %s", name, storage, meta["sizes"])
    return meta


def main(args: argparse.Namespace) -> None:
    prepare(args.name, args.settings, args.data, args.meta, workers=args.workers)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="dataset key in the config")
    p.add_argument("--settings", required=True, type=cli.json_arg, help="its config, as JSON")
    p.add_argument("--data", required=True, help="output data.pt")
    p.add_argument("--meta", required=True, help="output meta.json")
    p.add_argument("--workers", type=int, default=0, help="processes that decode image files")
    return p


if __name__ == "__main__":
    cli.run(main, parser())
