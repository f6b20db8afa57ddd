"""Stage train: one (set, protocol, seed) job over the protocol's LR grid.

Writes a JSON with the accuracy curve of every LR, the selected LR and accuracy,
the protocol, seed, device and software versions. The set is a set file (rdm,
reference or syn set) or, with `--real`, the train split of the prepared dataset.
The protocol's `label_source` says where soft labels come from (`label_targets`):
`--soft-labels` (mode S, made by the soft_labels stage), the set file itself (a syn set
given with soft labels), or, in mode M, `--teacher` checkpoints, one per entry of the
protocol's `teachers`. `--checkpoint` saves the selected model's weights (the real-hard
runs do, so they can serve as teachers).
While it trains, the job keeps a checkpoint to resume from (`training.checkpoints`, every
$DDRANK_CHECKPOINT_MINUTES minutes: resources.checkpoint_minutes) and removes it once the
run file is written; SIGUSR1 or SIGTERM make it checkpoint at the end of the epoch and exit
with `preemption.EXIT_CODE`.
A streamed dataset (too large to cache) is read by `--workers` DataLoader processes.
The protocol's `train_transforms` go to the engine; its `test_transforms` are applied to
the test and val splits here (`transforms.batches`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import torch

from ddrank_steps import paths, stage_cli
from ddrank_steps.data import streaming
from ddrank_steps.data.training_inputs import DatasetMeta, load_set, load_split
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.protocol_defaults import precision_of
from ddrank_steps.runtime import preemption
from ddrank_steps.runtime.atomic_write import write_json
from ddrank_steps.runtime.job_policy import (
    CONCURRENT_LRS,
    DEFAULT_CHECKPOINT_MINUTES,
    ENV_CHECKPOINT_MINUTES,
)
from ddrank_steps.training import distributed, precision
from ddrank_steps.training.checkpoints import Checkpoints, run_header
from ddrank_steps.training.engine import (
    RunGroup,
    RunResult,
    Split,
    concurrent_lrs,
    resolve_device,
    train_group,
)
from ddrank_steps.training.label_targets import soft_targets, teacher_ensemble
from ddrank_steps.training.teachers import save_checkpoint
from ddrank_steps.transforms.batches import BatchTransform, protocol_transforms
from ddrank_steps.versions import software_versions

log = logging.getLogger("ddrank.train")


def learning_rates(protocol: dict, set_blob: dict | None, set_path: str) -> list[float]:
    source = protocol["lr_source"]
    if source == "grid":
        return [float(lr) for lr in protocol["lr_grid"]]
    if source == "fixed":
        return [float(protocol["lr"])]
    if source == "set":
        if set_blob is None or set_blob.get("lr") is None:
            raise InputError(set_path, "lr", "the protocol asks for the method's lr, but none")
        return [float(set_blob["lr"])]
    raise ConfigError(f"lr_source '{source}' is unknown")


def main(args: argparse.Namespace) -> None:
    try:
        with preemption.catching():
            run(args)
    except preemption.Stopped as stop:
        log.warning(
            "%s: the checkpoint is written; exiting with %d so that a rerun (or retry) resumes it",
            stop,
            preemption.EXIT_CODE,
        )
        sys.exit(preemption.EXIT_CODE)
    finally:
        distributed.teardown()


def run(args: argparse.Namespace) -> None:
    protocol = args.protocol
    device, rank, world = start_processes(args)
    meta = DatasetMeta.load(args.meta)
    # built first: a bad list is reported before any data is read
    train_transform, test_transform = protocol_transforms(protocol, meta)
    test, val = load_eval_splits(args, meta, test_transform)
    train, set_blob, set_info = load_training_set(args, meta)
    lrs = learning_rates(protocol, set_blob, args.set)
    teachers = teacher_ensemble(protocol, args.teacher, meta, device)
    log.info(
        "training %s (%d images) on %s, %d LR(s), seed %d",
        args.set,
        len(train.labels),
        device,
        len(lrs),
        args.seed,
    )
    group = RunGroup(
        protocol=protocol,
        seed=args.seed,
        train=on_device(train, device),
        test=on_device(test, device),
        val=on_device(val, device),
        shape=(meta.channels, meta.height, meta.width),
        num_classes=meta.num_classes,
        teachers=teachers,
        transform=train_transform,
        keep_state=bool(args.checkpoint),
        real=args.real,
    )
    together = concurrent_lrs(args.concurrent_lrs, device, streaming.is_streamed(train.images))
    checkpoints = job_checkpoints(args, lrs, device, world, together)
    results, best = train_group(
        group, lrs, show_progress=rank == 0, concurrent=together, checkpoints=checkpoints
    )
    if rank:  # one set of outputs: rank 0's
        return
    chosen = results[best]
    if args.checkpoint:
        save_selected(args.checkpoint, protocol, args.seed, chosen)
    write_json(args.out, run_record(args, meta, set_info, results, best, device, world))
    checkpoints.remove()
    log.info("selected lr %g: test accuracy %.4f", chosen.lr, chosen.acc)


def start_processes(args: argparse.Namespace) -> tuple[torch.device, int, int]:
    """Threads, the device and, under torchrun, the process group: (device, rank, world)."""
    torch.set_num_threads(distributed.process_threads(args.threads))
    device = distributed.init_from_env(resolve_device(args.device))
    precision.check_supported(precision_of(args.protocol), device)
    rank, world = distributed.rank_world()
    distributed.check_batch(args.protocol["batch_size"], world)
    keyed = args.protocol.get("processes")
    if keyed is not None and keyed != world:  # the cache key would describe another run
        raise ConfigError(
            f"the run protocol is keyed for {keyed} process(es) but runs under {world}; "
            "set resources.real_processes to match, or rerun the workflow so it plans again"
        )
    if rank:  # one log and one set of outputs: rank 0's
        logging.getLogger("ddrank").setLevel(logging.WARNING)
    return device, rank, world


def job_checkpoints(
    args: argparse.Namespace, lrs: list[float], device: torch.device, world: int, together: bool
) -> Checkpoints:
    """The job's checkpoint (`paths.run_checkpoint` of its run file), keyed on everything
    its result depends on."""
    inputs = [args.set, args.data, args.meta, args.soft_labels, *args.teacher]
    header = run_header(
        args.protocol,
        args.protocol_key,
        args.seed,
        lrs,
        [path for path in inputs if path],
        device=device.type,
        processes=world,
        together=together,
    )
    minutes = os.environ.get(ENV_CHECKPOINT_MINUTES, "").strip()
    try:
        minutes = float(minutes) if minutes else DEFAULT_CHECKPOINT_MINUTES
    except ValueError:
        raise ConfigError(
            f"{ENV_CHECKPOINT_MINUTES}={minutes!r}: give minutes (resources.checkpoint_minutes)"
        ) from None
    return Checkpoints(paths.run_checkpoint(args.out), header, minutes, device)


def load_eval_splits(
    args: argparse.Namespace, meta: DatasetMeta, test_transform: BatchTransform | None
) -> tuple[Split, Split | None]:
    """The dataset's test split and its val split (None without one), with the
    protocol's test_transforms applied."""
    test = Split(*load_split(args.data, "test", meta, args.workers))
    val_pair = load_split(args.data, "val", meta, args.workers)
    val = Split(*val_pair) if val_pair is not None else None
    if test_transform is not None:  # the same test images for every term of a score
        for split in (test, val):
            if split is not None:
                split.images = test_transform.apply_to_split(split.images)
    return test, val


def load_training_set(
    args: argparse.Namespace, meta: DatasetMeta
) -> tuple[Split, dict | None, dict]:
    """The set to train on, with its mode-S soft labels; its set file's contents (None
    for the real train split) and its info, recorded in the run file."""
    if args.real:
        set_blob = None
        train = Split(*load_split(args.data, "train", meta, args.workers))
        set_info = {"kind": "real", "dataset": meta.name, "split": "train"}
    else:
        set_blob = load_set(args.set)
        train = Split(set_blob["images"], set_blob["labels"])
        set_info = set_blob.get("info", {})
    train.soft = soft_targets(
        args.protocol, set_blob, len(train.labels), meta.num_classes, args.set, args.soft_labels
    )
    return train, set_blob, set_info


def on_device(split: Split | None, device: torch.device) -> Split | None:
    if split is None:
        return None
    soft = split.soft.to(device) if split.soft is not None else None
    return Split(split.images.to(device), split.labels.to(device), soft)


def save_selected(path: str, protocol: dict, seed: int, chosen: RunResult) -> None:
    """The selected run's weights, with the architecture that loads them as a teacher."""
    arch = {"model": protocol["model"], "model_options": protocol.get("model_options") or {}}
    info = {"seed": seed, "lr": chosen.lr, "epoch": chosen.selected_epoch}
    save_checkpoint(path, chosen.state, arch, {**info, "acc": chosen.acc})


def run_record(
    args: argparse.Namespace,
    meta: DatasetMeta,
    set_info: dict,
    results: list[RunResult],
    best: int,
    device: torch.device,
    world: int,
) -> dict:
    """The run file: every LR's curve, the selection, and what the runs depended on."""
    protocol, chosen = args.protocol, results[best]
    return {
        "set": args.set,
        "set_info": set_info,
        "dataset": meta.name,
        # the space every set of this run was normalised in (a syn set must match it)
        "data": {
            "mean": meta.mean,
            "std": meta.std,
            "shape": [meta.channels, meta.height, meta.width],
            "storage": meta.storage,
            "zca": {"eps": meta.zca_eps, "input": meta.zca_input} if meta.zca else None,
        },
        "seed": args.seed,
        "protocol": protocol,
        "protocol_key": args.protocol_key,
        "select": protocol["select"],
        "runs": [r.to_dict() for r in results],
        # a diverged LR scores at chance; when every LR diverged the term is not the set's
        "diverged_lrs": [r.lr for r in results if r.diverged_at is not None],
        "all_diverged": all(r.diverged_at is not None for r in results),
        "selected": {
            "lr": chosen.lr,
            "acc": chosen.acc,
            "val_acc": chosen.val_acc,
            "epoch": chosen.selected_epoch,
        },
        "device": str(device),
        # the arithmetic, also for fp32 runs, whose protocol does not name it
        "precision": precision_of(protocol),
        "processes": world,
        "threads": args.threads,
        "versions": software_versions(),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--set", required=True, help="set file, or the dataset's data.pt with --real")
    p.add_argument("--real", action="store_true", help="train on the real train split")
    p.add_argument("--data", required=True, help="prepared dataset data.pt (test/val splits)")
    p.add_argument("--meta", required=True)
    p.add_argument(
        "--protocol", required=True, type=stage_cli.json_arg, help="run protocol as JSON"
    )
    p.add_argument("--protocol-key", default="", help="the protocol's cache key, recorded")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads", default=1, type=int, help="CPU threads of the job, shared by its processes"
    )
    p.add_argument(
        "--workers", default=0, type=int, help="DataLoader processes of a streamed dataset"
    )
    p.add_argument(
        "--concurrent-lrs",
        default="auto",
        choices=CONCURRENT_LRS,
        help="train the LR grid together on the device (auto: on a GPU in one process)",
    )
    p.add_argument("--soft-labels", default=None, help="mode S labels of the set (.pt)")
    p.add_argument("--teacher", action="append", default=[], help="mode M teacher checkpoint")
    p.add_argument("--checkpoint", default=None, help="save the selected model's weights here")
    p.add_argument("--out", required=True)
    return p


if __name__ == "__main__":
    stage_cli.run(main, parser())
