"""Stage given_accuracy: a known real-hard accuracy, written as a run file.

With `eval_full_data: false` a metric takes its real-hard term from a table of known
accuracies (the reference's REAL_DATA_ACC_CACHE, extended by the config's
`real_accuracies`) instead of training the model on the whole train split. The run file
has the same `selected` block as a trained run, so the score reads it like any term, and a
`given` block that says where the value comes from, which the score file and the
leaderboard carry on. No torch: nothing is trained.
"""

from __future__ import annotations

import argparse
import logging

from ddrank_steps import stage_cli
from ddrank_steps.runtime.atomic_write import write_json

log = logging.getLogger("ddrank.given_accuracy")


def main(args: argparse.Namespace) -> None:
    protocol = args.protocol
    accuracy = float(protocol["given_accuracy"])
    write_json(
        args.out,
        {
            "seed": args.seed,
            "protocol": protocol,
            "protocol_key": args.protocol_key,
            "given": {
                "accuracy": accuracy,
                "source": protocol["source"],
                "entry": protocol["entry"],
            },
            # a known accuracy has no LR and no epoch: it was not trained here
            "selected": {"acc": accuracy, "lr": None, "epoch": None},
        },
    )
    log.info("real-hard given, not trained: %.4f (%s)", accuracy, protocol["source"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--protocol", required=True, type=stage_cli.json_arg)
    p.add_argument("--protocol-key", required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
