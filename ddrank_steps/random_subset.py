"""Stage random_subset: the rdm set of one round, a seeded random real subset.

Each class contributes `ipc` distinct training images (same IPC as the syn sets it
is compared with). The images are stored exactly as training sees them (lossless,
float32 in the normalised space), with a JSON manifest of the source indices so
the draw can be audited and reproduced.
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import cli
from ddrank_steps.data import DatasetMeta, load_split
from ddrank_steps.io import save_torch, write_json
from ddrank_steps.seeding import rdm_subset_seed
from ddrank_steps.sets import draw_per_class, make_set

log = logging.getLogger("ddrank.random_subset")


def main(args: argparse.Namespace) -> None:
    meta = DatasetMeta.load(args.meta)
    images, labels = load_split(args.data, "train", meta)
    seed = rdm_subset_seed(meta.name, args.ipc, args.round_seed)
    idx = draw_per_class(labels, meta.num_classes, args.ipc, seed, args.data)
    info = {
        "kind": "rdm",
        "dataset": meta.name,
        "ipc": args.ipc,
        "round_seed": args.round_seed,
        "draw_seed": seed,
        "split": "train",
        "indices": idx.tolist(),
    }
    save_torch(args.out, make_set(images[idx], labels[idx], info))
    write_json(args.manifest, info)
    log.info("drew %d images (seed %d) for %s ipc %d", len(idx), seed, meta.name, args.ipc)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--ipc", required=True, type=int)
    p.add_argument("--round-seed", required=True, type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)
    return p


if __name__ == "__main__":
    cli.run(main, parser())
