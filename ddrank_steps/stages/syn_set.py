"""Stage syn_set: read a method's distilled set, check it, and store it as a set file.

Everything that can be wrong with a user's files is caught here, before any training,
with one error naming the file, the field and what was expected. The images are a `.pt`
tensor (float in the dataset's normalised space, or uint8 pixels) or dict, or a folder
with one subfolder per class; labels, soft labels and the lr are optional. What is
accepted and checked: `ddrank_steps.data.syn_import`. For a dataset with `zca`, `--data`
gives the ZCA fit that the set is checked against (not for `--reference-set`).
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.data.syn_import import import_set
from ddrank_steps.data.training_inputs import DatasetMeta, load_zca
from ddrank_steps.errors import ConfigError
from ddrank_steps.runtime.atomic_write import save_torch

log = logging.getLogger("ddrank.syn_set")


def main(args: argparse.Namespace) -> None:
    meta = DatasetMeta.load(args.meta)
    lr = args.lr
    if lr is not None:
        try:
            lr = float(lr)
        except ValueError:
            pass  # a path
    if meta.zca and args.data is None and not args.reference_set:
        raise ConfigError(f"dataset {meta.name} has zca: pass --data (its data.pt, for the fit)")
    zca = load_zca(args.data, meta) if meta.zca and args.data is not None else None
    blob = import_set(
        args.method,
        args.images,
        args.labels,
        lr,
        args.ipc,
        meta,
        soft_labels=args.soft_labels,
        zca=zca,
        reference_set=args.reference_set,
    )
    save_torch(args.out, blob)
    info = blob["info"]
    log.info(
        "imported %s: %d images, %s labels", args.method, len(blob["labels"]), info["label_kind"]
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--method", required=True)
    p.add_argument("--images", required=True, help="a .pt file or a class-folder tree")
    p.add_argument("--labels", default=None)
    p.add_argument("--soft-labels", default=None, help="(N, classes) teacher logits (.pt)")
    p.add_argument("--lr", default=None, help="a number or a .pt/.txt path")
    p.add_argument("--ipc", required=True, type=int)
    p.add_argument("--meta", required=True)
    p.add_argument("--data", default=None, help="the dataset's data.pt (its ZCA fit, if zca)")
    p.add_argument(
        "--reference-set",
        action="store_true",
        help="the images are a reference set of this dataset (no ZCA check: built whitened)",
    )
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
