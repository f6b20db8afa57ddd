"""Stage train: one (set, protocol, seed) job over the protocol's LR grid.

Writes a JSON with the accuracy curve of every LR, the selected LR and accuracy,
the protocol, seed, device and software versions. The set is a set file (rdm,
reference or syn set) or, with `--real`, the train split of the prepared dataset.
"""

from __future__ import annotations

import argparse
import logging

import torch

from ddrank_steps import cli
from ddrank_steps.data import DatasetMeta, load_set, load_split
from ddrank_steps.engine import Split, resolve_device, train_group
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.io import write_json
from ddrank_steps.versions import software_versions

log = logging.getLogger("ddrank.train")


def learning_rates(protocol: dict, set_blob: dict | None, set_path: str) -> list[float]:
    source = protocol["lr_source"]
    if source == "grid":
        return [float(lr) for lr in protocol["lr_grid"]]
    if source == "fixed":
        return [float(protocol["lr"])]
    if source == "set":
        if set_blob is None or set_blob.get("lr") is None:
            raise InputError(set_path, "lr", "the protocol asks for the method's lr, but none")
        return [float(set_blob["lr"])]
    raise ConfigError(f"lr_source '{source}' is unknown")


def main(args: argparse.Namespace) -> None:
    protocol = args.protocol
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    meta = DatasetMeta.load(args.meta)
    shape = (meta.channels, meta.height, meta.width)

    test = Split(*load_split(args.data, "test", meta))
    val_pair = load_split(args.data, "val", meta)
    val = Split(*val_pair) if val_pair is not None else None
    if args.real:
        set_blob = None
        train = Split(*load_split(args.data, "train", meta))
        set_info = {"kind": "real", "dataset": meta.name, "split": "train"}
    else:
        set_blob = load_set(args.set)
        train = Split(set_blob["images"], set_blob["labels"])
        set_info = set_blob.get("info", {})
    lrs = learning_rates(protocol, set_blob, args.set)

    def to_device(split: Split | None) -> Split | None:
        if split is None:
            return None
        return Split(split.images.to(device), split.labels.to(device))

    log.info(
        "training %s (%d images) on %s, %d LR(s), seed %d",
        args.set,
        len(train.labels),
        device,
        len(lrs),
        args.seed,
    )
    results, best = train_group(
        protocol,
        lrs,
        args.seed,
        to_device(train),
        to_device(test),
        to_device(val),
        shape,
        meta.num_classes,
    )
    chosen = results[best]
    write_json(
        args.out,
        {
            "set": args.set,
            "set_info": set_info,
            "dataset": meta.name,
            "seed": args.seed,
            "protocol": protocol,
            "protocol_key": args.protocol_key,
            "select": protocol["select"],
            "runs": [r.to_dict() for r in results],
            "selected": {
                "lr": chosen.lr,
                "acc": chosen.acc,
                "val_acc": chosen.val_acc,
                "epoch": chosen.selected_epoch,
            },
            "device": str(device),
            "threads": args.threads,
            "versions": software_versions(),
        },
    )
    log.info("selected lr %g: test accuracy %.4f", chosen.lr, chosen.acc)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--set", required=True, help="set file, or the dataset's data.pt with --real")
    p.add_argument("--real", action="store_true", help="train on the real train split")
    p.add_argument("--data", required=True, help="prepared dataset data.pt (test/val splits)")
    p.add_argument("--meta", required=True)
    p.add_argument("--protocol", required=True, type=cli.json_arg, help="run protocol as JSON")
    p.add_argument("--protocol-key", default="", help="the protocol's cache key, recorded")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", default=1, type=int)
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    cli.run(main, parser())
