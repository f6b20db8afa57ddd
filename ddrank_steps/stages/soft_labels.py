"""Stage soft_labels: mode-S labels of a set, from the teacher ensemble.

For each image of the set (un-augmented), the mean of the teachers' logits, computed
once per round and stored; training in mode S then uses them as fixed targets. This is
what the reference meant to do for random subsets (its code for it crashes).
"""

from __future__ import annotations

import argparse
import logging

import torch

from ddrank_steps import stage_cli
from ddrank_steps.data.training_inputs import DatasetMeta, load_set
from ddrank_steps.runtime.atomic_write import save_torch
from ddrank_steps.training.engine import resolve_device
from ddrank_steps.training.teachers import ensemble_logits, load_ensemble

log = logging.getLogger("ddrank.soft_labels")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    meta = DatasetMeta.load(args.meta)
    specs = args.teachers
    teachers = load_ensemble(specs, args.teacher, meta, device)
    blob = load_set(args.set)
    logits = ensemble_logits(blob["images"], teachers, args.batch_size, device)
    agree = (logits.argmax(1) == blob["labels"]).float().mean().item()
    info = {"set": args.set, "teachers": specs, "checkpoints": args.teacher, "agreement": agree}
    save_torch(args.out, {"soft_labels": logits, "info": info})
    log.info(
        "labelled %d images; teacher argmax agrees with the set's labels on %.1f%%",
        len(logits),
        100 * agree,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--set", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument(
        "--teachers", required=True, type=stage_cli.json_arg, help="teacher specs (JSON)"
    )
    p.add_argument("--teacher", action="append", default=[], help="checkpoint, one per spec")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
