"""Stage plot_terms: one score's terms side by side (e.g. real-hard, syn-hard, syn-any,
rdm-any for LRS; the aug and naug pairs for ARS) with their rounds, and the differences
the score is made of (HLR and IOR; the gaps with and without augmentation), so a reader
sees why the score is what it is."""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.reporting import figure_output, score_figures
from ddrank_steps.reporting.score_records import read_score

log = logging.getLogger("ddrank.plot_terms")


def main(args: argparse.Namespace) -> None:
    score = read_score(args.score)
    for what in score.missing:
        log.warning("%s: missing %s", args.score, what)
    figure_output.save(score_figures.score_terms(score), figure_output.output_files(args))
    log.info("%s %s -> %s", score.method, score.metric, args.svg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--score", required=True)
    figure_output.add_output_args(p)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
