"""Stage plot_run: one training job's test accuracy against epoch for every LR of its
grid, the selected point starred (the curves the run file records)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ddrank_steps import cli, figures, run_plots

log = logging.getLogger("ddrank.plot_run")


def main(args: argparse.Namespace) -> None:
    try:
        run = json.loads(Path(args.run).read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s)", args.run, exc)
        run = {}
    figures.save(
        run_plots.run_curves(run if isinstance(run, dict) else {}, args.run),
        figures.output_files(args),
    )
    log.info("%s -> %s", args.run, args.svg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", required=True, help="a run file (results/runs/...)")
    figures.add_output_args(p)
    return p


if __name__ == "__main__":
    cli.run(main, parser())
