"""Stage plot_gallery: a method's syn set beside one random real subset of the same IPC
(the first round's), images back in pixel space, a row per class."""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.data.training_inputs import DatasetMeta, load_set, load_zca
from ddrank_steps.reporting import figure_output
from ddrank_steps.reporting.gallery_figure import gallery_figure

log = logging.getLogger("ddrank.plot_gallery")


def main(args: argparse.Namespace) -> None:
    meta = DatasetMeta.load(args.meta)
    zca = load_zca(args.data, meta) if meta.zca else None
    panels = {  # checked reads: a damaged set is named, not drawn
        f"syn: {args.method}": load_set(args.syn),
        f"rdm: random real subset (seed {args.rdm_seed})": load_set(args.rdm),
    }
    title = f"{meta.name} · {args.method} beside a random subset of the same IPC"
    figure_output.save(gallery_figure(panels, meta, zca, title), figure_output.output_files(args))
    log.info("%s -> %s", args.method, args.svg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--method", required=True)
    p.add_argument("--syn", required=True, help="the method's syn set file")
    p.add_argument("--rdm", required=True, help="a random subset file of the same IPC")
    p.add_argument("--rdm-seed", required=True, type=int)
    p.add_argument("--meta", required=True)
    p.add_argument("--data", default=None, help="the prepared dataset (its ZCA fit), with zca")
    figure_output.add_output_args(p)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
