"""Stage reference_set: a classic baseline set built from the real train split.

`--kind` is `random` (an independent random real subset), `herding` (per class, the real
images whose running mean tracks the class mean) or `kmeans` (per class, the k-means
centroids): `ddrank_steps.data.coresets` builds them. They give the leaderboard something to
rank, and are then scored like a method's syn set.
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.data.coresets import KINDS, build
from ddrank_steps.data.training_inputs import DatasetMeta, load_split
from ddrank_steps.runtime.atomic_write import save_torch
from ddrank_steps.seeding import reference_set_seed

log = logging.getLogger("ddrank.reference_set")


def main(args: argparse.Namespace) -> None:
    meta = DatasetMeta.load(args.meta)
    images, labels = load_split(args.data, "train", meta, args.workers)
    seed = reference_set_seed(args.kind, meta.name, args.ipc, args.seed)
    blob = build(args.kind, images, labels, meta, args.ipc, seed, args.data)
    save_torch(args.out, blob)
    log.info("built %s set: %d images", args.kind, len(blob["labels"]))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--data", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--ipc", required=True, type=int)
    p.add_argument("--seed", required=True, type=int, help="the config's base seed")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=0, help="processes decoding image files")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
