"""Stage prepare_dataset: cache a real dataset's splits once, with its statistics.

Output: `data.pt` (raw train/test[/val] tensors, lossless) and `meta.json`
(classes, shape, value range, normalisation mean/std and where they came from).
"""

from __future__ import annotations

import argparse
import logging

import torch

from ddrank_steps import cli
from ddrank_steps.datasets import Split, load_source
from ddrank_steps.errors import ConfigError
from ddrank_steps.io import save_torch, write_json
from ddrank_steps.seeding import derive_seed

log = logging.getLogger("ddrank.prepare_dataset")


def split_off_val(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out a stratified share of the train split for `select: val`."""
    g = torch.Generator().manual_seed(seed)
    val_mask = torch.zeros(len(train.labels), dtype=torch.bool)
    for c in train.labels.unique():
        idx = torch.nonzero(train.labels == c).flatten()
        n_val = int(round(len(idx) * fraction))
        val_mask[idx[torch.randperm(len(idx), generator=g)[:n_val]]] = True
    keep = ~val_mask
    return (
        Split(train.images[keep], train.labels[keep]),
        Split(train.images[val_mask], train.labels[val_mask]),
    )


def channel_stats(images: torch.Tensor, max_value: float) -> tuple[list[float], list[float]]:
    x = images.float() / max_value
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def prepare(name: str, settings: dict, data_out: str, meta_out: str) -> dict:
    raw = load_source(settings["source"], settings)
    train, val = raw.train, None
    val_fraction = float(settings.get("val_fraction", 0.0))
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"datasets.{name}.val_fraction must be in [0, 1); got {val_fraction}")
    if val_fraction > 0:
        train, val = split_off_val(train, val_fraction, derive_seed("val-split", name))

    if settings.get("mean") and settings.get("std"):
        mean, std, stats_from = list(settings["mean"]), list(settings["std"]), "config"
    elif raw.mean is not None:
        mean, std, stats_from = raw.mean, raw.std, "source"
    else:
        mean, std = channel_stats(train.images, raw.max_value)
        stats_from = "train split"
    channels = train.images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"datasets.{name}.mean/std need {channels} values (one per channel); "
            f"got {len(mean)} and {len(std)}"
        )

    blob = {"train": {"images": train.images, "labels": train.labels}}
    blob["test"] = {"images": raw.test.images, "labels": raw.test.labels}
    if val is not None:
        blob["val"] = {"images": val.images, "labels": val.labels}
    meta = {
        "name": name,
        "source": settings["source"],
        "num_classes": len(raw.classes),
        "classes": raw.classes,
        "channels": int(channels),
        "height": int(train.images.shape[2]),
        "width": int(train.images.shape[3]),
        "max_value": raw.max_value,
        "mean": mean,
        "std": std,
        "stats_from": stats_from,
        "sizes": {split: len(part["labels"]) for split, part in blob.items()},
        "val_fraction": val_fraction,
        "notes": raw.notes,
    }
    save_torch(data_out, blob)
    write_json(meta_out, meta)
    log.info("prepared %s: %s", name, meta["sizes"])
    return meta


def main(args: argparse.Namespace) -> None:
    prepare(args.name, args.settings, args.data, args.meta)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="dataset key in the config")
    p.add_argument("--settings", required=True, type=cli.json_arg, help="its config, as JSON")
    p.add_argument("--data", required=True, help="output data.pt")
    p.add_argument("--meta", required=True, help="output meta.json")
    return p


if __name__ == "__main__":
    cli.run(main, parser())
