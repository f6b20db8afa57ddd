"""Stage leaderboard: one row per method, every metric's score and terms, as CSV and HTML.

Column names are `{metric}_{quantity}_{mean|std|se}` (se: the standard error of the mean,
for the metric's quantities) and `{metric}_{term}_acc_{mean|std}`: e.g. `lrs_hard_lrs_mean`,
`lrs_soft_lrs_mean`, `ars_ars_mean` (in [0, 100]), `lrs_hard_hlr_mean`,
`ars_with_aug_mean`, `accuracy_acc_mean` and term accuracies such as
`lrs_hard_rdm-any_acc_mean` (fractions). Rows are ranked by the headline quantity of
the highest-ranked metric the config computes (the metric registry's order: LRS-hard,
then LRS-soft, then ARS, then accuracy).
"""

from __future__ import annotations

import argparse
import html
import logging

import pandas as pd

from ddrank_steps import cli, metric_registry
from ddrank_steps.io import atomic_path, write_text
from ddrank_steps.reading import read_cached_json

log = logging.getLogger("ddrank.leaderboard")
UNITS = "LRS and ARS in [0, 100]; accuracies and their differences as fractions."


def rows(score_files: list[str]) -> pd.DataFrame:
    by_method: dict[str, dict] = {}
    for path in score_files:
        s = read_cached_json(path)
        row = by_method.setdefault(
            s["method"], {"method": s["method"], "dataset": s["dataset"], "ipc": s["ipc"]}
        )
        metric = s["metric"]
        entry = metric_registry.get(metric)
        summary = s["summary"]
        for quantity in entry.quantities:
            row[f"{metric}_{quantity}_mean"] = summary[quantity]["mean"]
            row[f"{metric}_{quantity}_std"] = summary[quantity]["std"]
            # score files written before the standard error was recorded have none
            row[f"{metric}_{quantity}_se"] = summary[quantity].get("se")
        for term, stats in summary["terms"].items():
            row[f"{metric}_{term}_acc_mean"] = stats["mean"]
            row[f"{metric}_{term}_acc_std"] = stats["std"]
        given = {t.get("given") for r in s["rounds"] for t in r["terms"].values()} - {None}
        if given:  # e.g. real-hard from a table of known accuracies, not trained
            row[f"{metric}_given"] = "; ".join(sorted(given))
        syn_term = entry.lr_term
        syn_lrs = [r["terms"][syn_term]["lr"] for r in s["rounds"]]
        row[f"{metric}_syn_lr"] = ";".join(f"{lr:g}" for lr in syn_lrs)
        row[f"{metric}_protocol"] = s["protocol_name"]
        for setting in entry.settings:
            row[f"{metric}_{setting}"] = s["settings"][setting]
        row[f"{metric}_select"] = s["protocols"][syn_term]["select"]
        # terms whose every LR diverged: their accuracy is a broken net's (empty: none)
        row[f"{metric}_diverged"] = ";".join(summary.get("diverged_terms", []))
        row[f"{metric}_rounds"] = len(s["rounds"])
        row[f"{metric}_seeds"] = ";".join(str(x) for x in s["seeds"])
    table = pd.DataFrame(list(by_method.values()))
    headlines = [f"{m.name}_{m.headline}_mean" for m in metric_registry.METRICS.values()]
    sort_cols = [c for c in headlines if c in table][:1]  # rank by one score; others are read
    if sort_cols:
        table = table.sort_values(sort_cols, ascending=False, kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def report_html(table: pd.DataFrame) -> str:
    body = table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ddrank leaderboard</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;text-align:right}</style>"
        "</head><body><h1>ddrank leaderboard</h1>"
        f"<p>{html.escape(UNITS)}</p>"
        f"{body}</body></html>\n"
    )


def main(args: argparse.Namespace) -> None:
    table = rows(args.scores)
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(args.html, report_html(table))
    log.info("leaderboard of %d methods -> %s", len(table), args.csv)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", required=True)
    p.add_argument("--html", required=True)
    p.add_argument("scores", nargs="+")
    return p


if __name__ == "__main__":
    cli.run(main, parser())
