"""Stage plot_run: one training job's test accuracy against epoch for every LR of its
grid, the selected point starred (the curves the run file records)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ddrank_steps import stage_cli
from ddrank_steps.reporting import figure_output, run_figures

log = logging.getLogger("ddrank.plot_run")


def main(args: argparse.Namespace) -> None:
    try:
        run = json.loads(Path(args.run).read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s)", args.run, exc)
        run = {}
    figure_output.save(
        run_figures.run_curves(run if isinstance(run, dict) else {}, args.run),
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
