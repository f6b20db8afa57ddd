"""Stage score: gather a metric's terms from cached runs and compute it per round.

The score file lists, for every round, its seed and each term's accuracy, chosen LR
and run file, then the per-round score and the mean/std over rounds. Accuracies and
HLR/IOR are fractions; LRS is in [0, 100].
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import cli, scores
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


def score_lrs_hard(spec: dict) -> dict:
    rounds = []
    for i, r in enumerate(spec["rounds"]):
        terms = {name: read_term(path) for name, path in r["terms"].items()}
        h = scores.hlr(terms["real-hard"]["acc"], terms["syn-hard"]["acc"])
        o = scores.ior(terms["syn-any"]["acc"], terms["rdm-any"]["acc"])
        alpha = scores.lrs_alpha(h, o, spec["weight"])
        rounds.append(
            {
                "round": i,
                "seed": r["seed"],
                "terms": terms,
                "hlr": h,
                "ior": o,
                "alpha": alpha,
                "lrs": scores.normalise(alpha),
            }
        )
    summary = {q: scores.mean_std([r[q] for r in rounds]) for q in ("lrs", "hlr", "ior")}
    summary["terms"] = {
        name: scores.mean_std([r["terms"][name]["acc"] for r in rounds])
        for name in rounds[0]["terms"]
    }
    return {"rounds": rounds, "summary": summary}


SCORERS = {"lrs_hard": score_lrs_hard}


def main(args: argparse.Namespace) -> None:
    spec = args.spec
    result = SCORERS[spec["metric"]](spec)
    out = {
        key: spec[key]
        for key in ("method", "metric", "dataset", "ipc", "weight", "lr_rule", "protocol_name")
    }
    out.update(
        {
            "protocols": spec["protocols"],
            "seeds": [r["seed"] for r in spec["rounds"]],
            **result,
            "units": "accuracies, HLR and IOR are fractions in [0, 1]; LRS is in [0, 100]",
            "std": "population standard deviation over rounds (ddof = 0), as the reference",
            "versions": software_versions(),
        }
    )
    write_json(args.out, out)
    s = result["summary"]
    log.info(
        "%s %s: LRS %.2f ± %.2f  HLR %.4f  IOR %.4f",
        spec["method"],
        spec["metric"],
        s["lrs"]["mean"],
        s["lrs"]["std"],
        s["hlr"]["mean"],
        s["ior"]["mean"],
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spec", required=True, type=cli.json_arg, help="the score's plan, as JSON")
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    cli.run(main, parser())
