"""Stage prepare_dataset: cache a real dataset's splits once, with its statistics.

Output: `data.pt` and `meta.json` (classes, shape, value range, normalisation mean/std
and where they came from, storage). Small datasets are cached as lossless uint8 tensors;
image-file datasets larger than `cache_limit_gb` are stored as an index of their files
and streamed during training. With `val_fraction`, a stratified share of the train split
is held out as `val`; with `zca`, the dataset-level ZCA whitening is fitted on the train
split and stored. What is stored and why: `ddrank_steps.data.dataset_store`.
"""

from __future__ import annotations

import argparse

from ddrank_steps import stage_cli
from ddrank_steps.data.dataset_store import prepare


def main(args: argparse.Namespace) -> None:
    prepare(args.name, args.settings, args.data, args.meta, workers=args.workers)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="dataset key in the config")
    p.add_argument("--settings", required=True, type=stage_cli.json_arg, help="its config, as JSON")
    p.add_argument("--data", required=True, help="output data.pt")
    p.add_argument("--meta", required=True, help="output meta.json")
    p.add_argument("--workers", type=int, default=0, help="processes that decode image files")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
