"""Stage plot_group: a leaderboard group's figure, each method's headline score with its
spread over rounds and the rounds as points, in rank order (ties marked).

Its inputs are the score files of the group's methods only, so adding a method to one
group redraws that group's figure and no other.
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.reporting import figure_output, score_figures
from ddrank_steps.reporting.score_records import Group, read_score

log = logging.getLogger("ddrank.plot_group")


def main(args: argparse.Namespace) -> None:
    group = Group(args.dataset, args.ipc, args.metric, args.protocol_name)
    scores = [read_score(path) for path in args.scores]
    figure_output.save(score_figures.group_scores(group, scores), figure_output.output_files(args))
    log.info("%s: %d method(s) -> %s", group.label, len(scores), args.svg)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--ipc", required=True, type=int)
    p.add_argument("--metric", required=True)
    p.add_argument("--protocol-name", required=True)
    figure_output.add_output_args(p)
    p.add_argument("scores", nargs="+", help="the group's score files")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
