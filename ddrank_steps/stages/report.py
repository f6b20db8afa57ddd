"""Stage report: `results/report.html`, one self-contained page (see
`ddrank_steps.reporting.html_page`) from the leaderboard, the score files and the figures the
plot stages drew (found through `ddrank_steps.paths`).

It never fails on what an older or partial result lacks: the page says what is missing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from ddrank_steps import paths, stage_cli
from ddrank_steps.reporting import html_page
from ddrank_steps.reporting.score_records import read_score
from ddrank_steps.reporting.standings import rank_groups
from ddrank_steps.runtime.atomic_write import write_text

log = logging.getLogger("ddrank.report")


def main(args: argparse.Namespace) -> None:
    scores = [read_score(path) for path in args.scores]
    notes = [f"{s.path}: missing {what}" for s in scores for what in s.missing]
    try:
        table = pd.read_csv(args.leaderboard)
    except (OSError, ValueError) as exc:
        notes.append(f"{args.leaderboard}: unreadable ({exc})")
        table = pd.DataFrame()
    groups = {g: [st.score for st in standings] for g, standings in rank_groups(scores).items()}
    galleries = {
        s.method: paths.GALLERY_FIGURE.format(dataset=s.dataset, method=s.method) for s in scores
    }
    base = Path(args.out).parent
    write_text(args.out, html_page.page(groups, table, galleries, base, notes))
    for note in notes:
        log.warning("%s", note)
    log.info("report of %d group(s) -> %s", len(groups), args.out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--leaderboard", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("scores", nargs="+")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
