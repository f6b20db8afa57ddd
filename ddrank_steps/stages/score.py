"""Stage score: gather a metric's terms from cached runs and compute it per round.

The metric (its formula and the quantities it summarises) comes from the metric
registry: `lrs_hard`, `lrs_soft` (HLR, IOR, LRS), `ars` (with/without-augmentation
gaps, ARS), `accuracy` (the syn set's plain test accuracy), and any metric added
there. The score file lists, for every round, its seed and each term's accuracy, chosen
LR and run file, then the per-round values and the mean/std over rounds. Accuracies and
their differences are fractions; LRS and ARS are in [0, 100].
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import formulas, metric_registry, stage_cli
from ddrank_steps.metric_registry import Metric
from ddrank_steps.reporting.run_records import read_run
from ddrank_steps.runtime.atomic_write import write_json
from ddrank_steps.versions import software_versions

log = logging.getLogger("ddrank.score")


def read_term(path: str) -> dict:
    """A term of the score from its run file (checked in full: a damaged one is an error
    naming it, never a number in the score)."""
    run = read_run(path)
    selected = run["selected"]
    term = {"acc": selected["acc"], "lr": selected["lr"], "epoch": selected["epoch"], "run": path}
    term["diverged"] = every_lr_diverged(run)
    if warning := (run.get("set_info") or {}).get("value_range"):
        term["value_range"] = warning  # the set's import warned about its values
    if term["diverged"]:  # why, as the train stage judged it (training/divergence.py)
        term["diverged_reason"] = divergence_reason(run)
    if run.get("given"):  # a known accuracy (eval_full_data: false), not a training
        term["given"] = run["given"]["source"]
    return term


def every_lr_diverged(run: dict) -> bool:
    """Whether every LR of the run diverged (its accuracy is then a broken net's): flagged
    by the train stage (a blow-up, training/divergence.py), or read from the curves, where
    a non-finite train loss is null, so run files written before the flag existed are
    judged too."""
    lrs = run.get("runs") or []
    return bool(lrs) and all(
        lr_run.get("diverged")
        or any(point.get("train_loss") is None for point in lr_run.get("curve", []))
        for lr_run in lrs
    )


def divergence_reason(run: dict) -> str:
    """The selected LR's reason for counting as diverged (as its run file says)."""
    chosen = run.get("selected", {}).get("lr")
    lrs = run.get("runs") or []
    for lr_run in sorted(lrs, key=lambda r: r.get("lr") != chosen):
        if reason := (lr_run.get("divergence") or {}).get("reason"):
            return f"lr {lr_run.get('lr'):g}: {reason}"
    return "the train loss is not finite"


def rounds_of(result: dict, term: str) -> list[dict]:
    """The rounds of a score result in which `term` diverged."""
    return [r for r in result.get("rounds", []) if r["terms"].get(term, {}).get("diverged")]


def diverged_terms(rounds: list[dict]) -> list[str]:
    """The terms whose every LR diverged in at least one round."""
    return sorted({name for r in rounds for name, t in r["terms"].items() if t.get("diverged")})


def score_rounds(spec: dict, metric: Metric) -> list[dict]:
    """Every round's term accuracies, chosen LRs and run files, and the metric's values."""
    rounds = []
    for i, r in enumerate(spec["rounds"]):
        terms = {name: read_term(path) for name, path in r["terms"].items()}
        acc = {name: t["acc"] for name, t in terms.items()}
        values = metric.compute(acc, spec["settings"])
        rounds.append({"round": i, "seed": r["seed"], "terms": terms, **values})
    return rounds


def summarise(rounds: list[dict], metric: Metric) -> dict:
    """Mean, population std and standard error over rounds of the metric's quantities and
    of each term."""
    summary = {q: formulas.mean_std([r[q] for r in rounds]) for q in metric.quantities}
    summary["terms"] = {
        name: formulas.mean_std([r["terms"][name]["acc"] for r in rounds])
        for name in rounds[0]["terms"]
    }
    # the score is still computed, but a reader must see that a term is a broken net's
    summary["diverged_terms"] = diverged_terms(rounds)
    # a set whose value range looked doubtful when it was imported (data/value_range.py)
    warnings = {
        f"{name}: {term['value_range']}"
        for r in rounds
        for name, term in r["terms"].items()
        if term.get("value_range")
    }
    if warnings:
        summary["set_warnings"] = sorted(warnings)
    return summary


def score(spec: dict) -> dict:
    """The metric of the spec, from its cached runs: rounds and their summary."""
    metric = metric_registry.get(spec["metric"])
    rounds = score_rounds(spec, metric)
    return {"rounds": rounds, "summary": summarise(rounds, metric)}


def main(args: argparse.Namespace) -> None:
    spec = args.spec
    result = score(spec)
    out = {
        key: spec[key]
        for key in ("method", "metric", "dataset", "ipc", "settings", "protocol_name")
    }
    first_run = next(iter(result["rounds"][0]["terms"].values()))["run"]
    out.update(
        {
            # the normalisation the method's images were read in, as the runs recorded it
            "data": read_run(first_run).get("data"),
            "protocols": spec["protocols"],
            # which recipe trained real-hard and whether it is the reference's (none: no
            # trained real-hard term)
            **({"real_recipe": spec["real_recipe"]} if spec.get("real_recipe") else {}),
            "seeds": [r["seed"] for r in spec["rounds"]],
            **result,
            "units": "accuracies and their differences are fractions; LRS and ARS are in [0, 100]",
            "std": "population standard deviation over rounds (ddof = 0), as the reference",
            "se": "standard error of the mean over rounds: sample std (ddof = 1) / sqrt(rounds); "
            "null from one round",
            "versions": software_versions(),
        }
    )
    write_json(args.out, out)
    for name in result["summary"]["diverged_terms"]:
        reasons = [r["terms"][name].get("diverged_reason") for r in rounds_of(result, name)]
        log.warning(
            "%s %s: every LR of term %s diverged in some round (%s; see its run files); "
            "the score uses that broken net's accuracy",
            spec["method"],
            spec["metric"],
            name,
            next((r for r in reasons if r), "the train loss is not finite"),
        )
    headline = metric_registry.get(spec["metric"]).headline
    stats = result["summary"][headline]
    log.info(
        "%s %s: %s %.4f ± %.4f",
        spec["method"],
        spec["metric"],
        headline,
        stats["mean"],
        stats["std"],
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--spec", required=True, type=stage_cli.json_arg, help="the score's plan, as JSON"
    )
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
