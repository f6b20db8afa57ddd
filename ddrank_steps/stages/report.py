"""Stage report: `results/report.html`, one self-contained page (see
`ddrank_steps.reporting.html_page`) from the leaderboard, the score files and the figures the
plot stages drew (found through `ddrank_steps.paths`).

What an older result lacks and can be shown as unknown, the page says is missing; a score
file or leaderboard it cannot read in full is an error naming it (a report that showed half
of one would mislead with exit 0).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from ddrank_steps import paths, stage_cli
from ddrank_steps.errors import InputError
from ddrank_steps.reporting import html_page
from ddrank_steps.reporting.score_records import read_score
from ddrank_steps.reporting.standings import rank_groups
from ddrank_steps.runtime.atomic_write import write_text
from ddrank_steps.runtime.checked_read import rebuild_fix

log = logging.getLogger("ddrank.report")


def read_leaderboard(path: str, methods: set[str]) -> pd.DataFrame:
    """The leaderboard CSV, with a row for each of `methods`; else an InputError."""
    fix = rebuild_fix(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", f"cannot be read as CSV ({exc})", fix) from None
    if "method" not in table.columns:
        raise InputError(path, "method", "missing: the file is cut short or not ours", fix)
    if lacking := sorted(methods - set(table["method"].astype(str))):
        raise InputError(path, "method", f"has no row for {', '.join(lacking)}", fix)
    return table


def main(args: argparse.Namespace) -> None:
    scores = [read_score(path) for path in args.scores]
    notes = [f"{s.path}: missing {what}" for s in scores for what in s.missing]
    table = read_leaderboard(args.leaderboard, {s.method for s in scores})
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
