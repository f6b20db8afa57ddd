"""Stage leaderboard: one row per method, every metric's score and terms, ranked within
groups, as CSV.

Column names are `{metric}_{quantity}_{mean|std|se}` (se: the standard error of the mean,
for the metric's quantities) and `{metric}_{term}_acc_{mean|std}`: e.g. `lrs_hard_lrs_mean`,
`lrs_soft_lrs_mean`, `ars_ars_mean` (in [0, 100]), `lrs_hard_hlr_mean`,
`ars_with_aug_mean`, `accuracy_acc_mean` and term accuracies such as
`lrs_hard_rdm-any_acc_mean` (fractions).

Methods are ranked within groups: the same dataset, IPC, metric and protocol
(`{metric}_group`, e.g. `digits/ipc10/lrs_hard/digits-dsa`), by the metric's headline
quantity (`{metric}_rank`). Each adjacent pair is compared over the rounds, paired by
seed (`{metric}_vs_next_*`: the mean difference of the headline to the next rank, its
sample std, 95 % interval, t-test p and rounds; `ddrank_steps.reporting.paired`), and
`{metric}_tied_with` lists the adjacent ranks the rounds do not separate from this one.
`group`, `rank` and `tied_with` repeat those of the row's lead metric, the
highest-ranked metric it has in the registry (LRS-hard, then LRS-soft, ARS, accuracy);
rows are ordered by that group and rank. `notes` says what a score file lacked.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from ddrank_steps import metric_registry, stage_cli
from ddrank_steps.protocol_defaults import precision_of
from ddrank_steps.reporting.score_records import Score, read_score
from ddrank_steps.reporting.standings import Standing, rank_groups
from ddrank_steps.runtime.atomic_write import atomic_path

log = logging.getLogger("ddrank.leaderboard")
LEAD_COLUMNS = ("group", "rank", "tied_with", "method", "dataset", "ipc")


def metric_columns(s: Score) -> dict:
    """The score's quantities, term accuracies, chosen LRs and settings, by column name."""
    metric = s.metric
    row = {}
    for quantity, stats in s.quantities.items():
        row[f"{metric}_{quantity}_mean"] = stats["mean"]
        row[f"{metric}_{quantity}_std"] = stats["std"]
        row[f"{metric}_{quantity}_se"] = stats.get("se")
    for term, stats in sorted(s.terms.items()):
        row[f"{metric}_{term}_acc_mean"] = stats["mean"]
        row[f"{metric}_{term}_acc_std"] = stats["std"]
    given = {
        t.get("given") for r in s.rounds for t in r.get("terms", {}).values() if isinstance(t, dict)
    } - {None}
    if given:  # e.g. real-hard from a table of known accuracies, not trained
        row[f"{metric}_given"] = "; ".join(sorted(given))
    if s.real_recipe:  # ddrank's own recipe is never mistaken for the reference's
        row[f"{metric}_real_recipe"] = (
            f"{s.real_recipe.get('entry')}: {s.real_recipe.get('source')}"
        )
        row[f"{metric}_real_recipe_is_reference"] = bool(s.real_recipe.get("reference"))
    # terms whose every LR diverged in some round: a broken net's accuracy (empty: none)
    row[f"{metric}_diverged"] = ";".join(s.diverged_terms)
    entry = metric_registry.METRICS.get(metric)
    syn_term = entry.lr_term if entry else None
    syn_lrs = [r.get("terms", {}).get(syn_term, {}).get("lr") for r in s.rounds]
    row[f"{metric}_syn_lr"] = ";".join(
        f"{lr:g}" if isinstance(lr, int | float) else "?" for lr in syn_lrs
    )
    row[f"{metric}_protocol"] = s.protocol
    for setting in entry.settings if entry else ():
        row[f"{metric}_{setting}"] = s.settings.get(setting)
    row[f"{metric}_select"] = s.protocols.get(syn_term, {}).get("select")
    # an fp32 run protocol names no precision (its key predates the switch)
    row[f"{metric}_precision"] = precision_of(s.protocols.get(syn_term, {}))
    row[f"{metric}_rounds"] = len(s.rounds)
    row[f"{metric}_seeds"] = ";".join(str(x) for x in s.seeds)
    return row


def standing_columns(standing: Standing, group_label: str) -> dict:
    """The score's group, rank within it, ties, and the paired comparison with the next."""
    metric = standing.score.metric
    row = {
        f"{metric}_group": group_label,
        f"{metric}_rank": standing.rank,
        f"{metric}_tied_with": standing.tied_text,
    }
    c = standing.vs_next
    if c is not None:
        row.update(
            {
                f"{metric}_vs_next_diff_mean": c.diff_mean,
                f"{metric}_vs_next_diff_sd": c.diff_sd,
                f"{metric}_vs_next_ci_low": c.ci_low,
                f"{metric}_vs_next_ci_high": c.ci_high,
                f"{metric}_vs_next_p": c.p,
                f"{metric}_vs_next_rounds": c.rounds,
            }
        )
    return row


def rows(score_files: list[str]) -> pd.DataFrame:
    scores = [read_score(path) for path in score_files]
    by_method: dict[str, dict] = {}
    for s in scores:
        row = by_method.setdefault(
            s.method, {"method": s.method, "dataset": s.dataset, "ipc": s.ipc, "notes": []}
        )
        row.update(metric_columns(s))
        row["notes"] += [f"{s.metric}: missing {what}" for what in s.missing]
        row["notes"] += [f"{s.metric}: set {w}" for w in s.set_warnings]
    lead: dict[str, tuple] = {}  # method -> (group order, rank, group label, ties)
    for order, (group, standings) in enumerate(rank_groups(scores).items()):
        for standing in standings:
            method = standing.score.method
            by_method[method].update(standing_columns(standing, group.label))
            entry = (order, standing.rank, group.label, standing.tied_text)
            lead[method] = min(lead.get(method, entry), entry)
    for method, row in by_method.items():
        _, row["rank"], row["group"], row["tied_with"] = lead[method]
        row["notes"] = "; ".join(row["notes"])
    ordered = sorted(by_method, key=lambda m: lead[m][:2])
    table = pd.DataFrame([by_method[m] for m in ordered])
    rest = [c for c in table.columns if c not in LEAD_COLUMNS and c != "notes"]
    return table[[*LEAD_COLUMNS, *rest, "notes"]]


def main(args: argparse.Namespace) -> None:
    table = rows(args.scores)
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info("leaderboard of %d methods -> %s", len(table), args.csv)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", required=True)
    p.add_argument("scores", nargs="+")
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
