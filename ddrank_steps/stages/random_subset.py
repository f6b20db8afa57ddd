"""Stage random_subset: the rdm set of one round, a seeded random real subset.

Each class contributes `ipc` distinct training images (same IPC as the syn sets it
is compared with). The images are stored exactly as training sees them (lossless,
float32 in the normalised space, or in ZCA space for a dataset with zca), with a JSON
manifest of the source indices (and source files, for datasets of image files) so the
draw can be audited and reproduced.

With `--png`, the subset is also written as a lossless PNG folder
`<png>/<class:05d>/<j:05d>.png` of the raw stored pixels (not de-normalised floats),
for tools that read image folders (the reference's "image" format, which saves lossy
JPEGs instead). Only the chosen images are decoded, so this works on streamed datasets.
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.data.png_folder import write_png_folder
from ddrank_steps.data.set_files import draw_per_class, make_set
from ddrank_steps.data.training_inputs import (
    DatasetMeta,
    load_labels,
    load_pixels,
    load_zca,
    source_files,
    to_training_space,
)
from ddrank_steps.runtime.atomic_write import save_torch, write_json
from ddrank_steps.seeding import rdm_subset_seed

log = logging.getLogger("ddrank.random_subset")


def main(args: argparse.Namespace) -> None:
    meta = DatasetMeta.load(args.meta)
    labels = load_labels(args.data, "train")
    seed = rdm_subset_seed(meta.name, args.ipc, args.round_seed)
    idx = draw_per_class(labels, meta.num_classes, args.ipc, seed, args.data)
    # Normalising the chosen raw pixels gives exactly the values of normalising the whole
    # split and then choosing (the operations are per element); so does whitening them
    # with the dataset's ZCA fit (per image, up to float rounding), for a dataset with zca.
    pixels = load_pixels(args.data, "train", idx, meta, args.workers)
    zca = load_zca(args.data, meta)
    info = {
        "kind": "rdm",
        "dataset": meta.name,
        "ipc": args.ipc,
        "round_seed": args.round_seed,
        "draw_seed": seed,
        "split": "train",
        "indices": idx.tolist(),
    }
    files = source_files(args.data, "train", idx)
    if files is not None:
        info["files"] = files
    if args.png:
        info["png_folder"] = args.png
        info["png_max_value"] = meta.max_value
        write_png_folder(pixels, labels[idx], args.png)
    save_torch(args.out, make_set(to_training_space(pixels, meta, zca), labels[idx], info))
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
    p.add_argument("--png", default=None, help="also write the subset as a PNG folder here")
    p.add_argument("--workers", type=int, default=0, help="processes decoding image files")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
