"""Stage plot_run: one training job's test accuracy against epoch for every LR of its
grid, the selected point starred (the curves the run file records)."""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.reporting import figure_output, run_figures
from ddrank_steps.reporting.run_records import read_run

log = logging.getLogger("ddrank.plot_run")


def main(args: argparse.Namespace) -> None:
    run = read_run(args.run)  # a damaged run is an error naming it, not an empty figure
    figure_output.save(
        run_figures.run_curves(run, args.run),
        figure_output.output_files(args),
    )
    log.info("%s -> %s", args.run, args.svg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", required=True, help="a run file (results/runs/...)")
    figure_output.add_output_args(p)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
