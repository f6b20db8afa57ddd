"""Stage score: gather a metric's terms from cached runs and compute it per round.

Metrics: `lrs_hard`, `lrs_soft` (HLR, IOR, LRS), `ars` (with/without-augmentation
gaps, ARS) and `accuracy` (the syn set's plain test accuracy). The score file lists,
for every round, its seed and each term's accuracy, chosen LR and run file, then the
per-round values and the mean/std over rounds. Accuracies and their differences are
fractions; LRS and ARS are in [0, 100].
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import cli, formulas
from ddrank_steps.errors import InputError
from ddrank_steps.io import read_json, write_json
from ddrank_steps.versions import software_versions

log = logging.getLogger("ddrank.score")


def read_term(path: str) -> dict:
    run = read_json(path)
    selected = run.get("selected")
    if not selected or "acc" not in selected:
        raise InputError(path, "selected.acc", "missing", "delete the file and rerun its job")
    return {"acc": selected["acc"], "lr": selected["lr"], "epoch": selected["epoch"], "run": path}


def _rounds(spec: dict, compute) -> list[dict]:
    rounds = []
    for i, r in enumerate(spec["rounds"]):
        terms = {name: read_term(path) for name, path in r["terms"].items()}
        acc = {name: t["acc"] for name, t in terms.items()}
        rounds.append({"round": i, "seed": r["seed"], "terms": terms, **compute(acc)})
    return rounds


def _summary(rounds: list[dict], quantities: tuple[str, ...]) -> dict:
    summary = {q: formulas.mean_std([r[q] for r in rounds]) for q in quantities}
    summary["terms"] = {
        name: formulas.mean_std([r["terms"][name]["acc"] for r in rounds])
        for name in rounds[0]["terms"]
    }
    return summary


def score_lrs(spec: dict) -> dict:
    """LRS-hard and LRS-soft: HLR from the hard terms, IOR from the method's recipe."""
    w = spec["settings"]["weight"]

    def compute(acc):
        h = formulas.hlr(acc["real-hard"], acc["syn-hard"])
        o = formulas.ior(acc["syn-any"], acc["rdm-any"])
        alpha = formulas.lrs_alpha(h, o, w)
        return {"hlr": h, "ior": o, "alpha": alpha, "lrs": formulas.normalise(alpha)}

    rounds = _rounds(spec, compute)
    return {"rounds": rounds, "summary": _summary(rounds, ("lrs", "hlr", "ior"))}


def score_ars(spec: dict) -> dict:
    gamma = spec["settings"]["gamma"]

    def compute(acc):
        with_aug = acc["syn-aug"] - acc["rdm-aug"]
        without_aug = acc["syn-naug"] - acc["rdm-naug"]
        beta = formulas.ars_beta(
            acc["syn-aug"], acc["rdm-aug"], acc["syn-naug"], acc["rdm-naug"], gamma
        )
        return {
            "with_aug": with_aug,
            "without_aug": without_aug,
            "beta": beta,
            "ars": formulas.normalise(beta),
        }

    rounds = _rounds(spec, compute)
    return {"rounds": rounds, "summary": _summary(rounds, ("ars", "with_aug", "without_aug"))}


def score_accuracy(spec: dict) -> dict:
    rounds = _rounds(spec, lambda acc: {"acc": acc["syn-any"]})
    return {"rounds": rounds, "summary": _summary(rounds, ("acc",))}


SCORERS = {
    "lrs_hard": score_lrs,
    "lrs_soft": score_lrs,
    "ars": score_ars,
    "accuracy": score_accuracy,
}
MAIN_QUANTITY = {"lrs_hard": "lrs", "lrs_soft": "lrs", "ars": "ars", "accuracy": "acc"}


def main(args: argparse.Namespace) -> None:
    spec = args.spec
    result = SCORERS[spec["metric"]](spec)
    out = {
        key: spec[key]
        for key in ("method", "metric", "dataset", "ipc", "settings", "protocol_name")
    }
    first_run = next(iter(result["rounds"][0]["terms"].values()))["run"]
    out.update(
        {
            # the normalisation the method's images were read in, as the runs recorded it
            "data": read_json(first_run).get("data"),
            "protocols": spec["protocols"],
            "seeds": [r["seed"] for r in spec["rounds"]],
            **result,
            "units": "accuracies and their differences are fractions; LRS and ARS are in [0, 100]",
            "std": "population standard deviation over rounds (ddof = 0), as the reference",
            "versions": software_versions(),
        }
    )
    write_json(args.out, out)
    main_quantity = MAIN_QUANTITY[spec["metric"]]
    stats = result["summary"][main_quantity]
    log.info(
        "%s %s: %s %.4f ± %.4f",
        spec["method"],
        spec["metric"],
        main_quantity,
        stats["mean"],
        stats["std"],
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=cli.json_arg, help="the score's plan, as JSON")
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    cli.run(main, parser())
