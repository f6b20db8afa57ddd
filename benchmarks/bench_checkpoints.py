"""Benchmark: what checkpointing (`training.checkpoints`) costs a training job.

The same group (protocol, set, seed, LR grid) trained without checkpoints (the baseline)
and with them, in this process, alternating which goes first in each repeat, since the
CPU may be shared. Two workloads:
- demo:  the demo's digits-dsa run: ConvNet-3 (width 32) on 8x8 grey images, IPC 10
         (100 images), DSA, 5 LRs, evaluated every 20 epochs;
- cifar: ConvNet-3 (width 128, instance norm) on 3x32x32 images, IPC 10, batch 256,
         5 LRs, evaluated every 20 epochs (the reference's CIFAR recipe, fewer epochs).
Checkpointed at the default interval (`resources.checkpoint_minutes`: 10 min, so in a run
this short only the evaluation points that cost under 1 %), and after every epoch (0), to
show the cost of one write. Printed, as medians over the repeats with their spread: the
work checkpointing adds (the time inside `after_epoch`: deciding, gathering the state,
writing) as a share of the rest of the run, which noise from other processes barely
touches; the end-to-end time ratio (checkpointed / baseline), which it does; the writes
per group and the mean cost of one; and the one-off cost of the header's code digest.

Run: `python benchmarks/bench_checkpoints.py [--device cuda] [--repeats 5] [--epochs 100]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_protocols import convnet_protocol

from ddrank_steps.runtime.job_policy import DEFAULT_CHECKPOINT_MINUTES
from ddrank_steps.training import checkpoints as checkpointing
from ddrank_steps.training.checkpoints import Checkpoints
from ddrank_steps.training.engine import RunGroup, Split, resolve_device, train_group

LRS = [0.001, 0.005, 0.01, 0.05, 0.1]
CLASSES = 10
DSA = {
    "scale": 1.2,
    "rotate": 15.0,
    "flip": 0.0,
    "brightness": 1.0,
    "saturation": 2.0,
    "contrast": 0.5,
    "crop": 0.125,
    "cutout": 0.5,
}


class Counting(Checkpoints):
    """Checkpoints that count their writes, and the time spent deciding and writing (all
    the work checkpointing adds to a run: the rest of the loop is the baseline's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes, self.seconds = 0, 0.0

    def after_epoch(self, epoch, evaluated, state) -> None:
        start = time.perf_counter()
        super().after_epoch(epoch, evaluated, state)
        self.seconds += time.perf_counter() - start

    def _write(self, payload: dict) -> None:
        super()._write(payload)
        self.writes += 1


def workload(name: str, epochs: int, device: torch.device) -> tuple[dict, Split, Split, tuple]:
    g = torch.Generator().manual_seed(0)
    if name == "demo":
        shape, width, options = (1, 8, 8), 32, {}
        p = convnet_protocol(
            epochs, 256, augmentation="dsa", aug_params=DSA, lr_grid=LRS, test_interval=20
        )
        p["model_options"] = {"width": width, **options}
        test_n = 450
    else:
        shape = (3, 32, 32)
        p = convnet_protocol(epochs, 256, lr_grid=LRS, test_interval=20)
        test_n = 2000
    train = Split(torch.randn(100, *shape, generator=g), torch.arange(100) % CLASSES)
    test = Split(torch.randn(test_n, *shape, generator=g), torch.arange(test_n) % CLASSES)
    to = lambda s: Split(s.images.to(device), s.labels.to(device))  # noqa: E731
    return p, to(train), to(test), shape


def timed(p, train, test, shape, checkpoints) -> float:
    group = RunGroup(p, 0, train, test, None, shape, CLASSES)
    if train.images.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_group(group, LRS, show_progress=False, checkpoints=checkpoints)
    if train.images.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(name: str, minutes: float, args, device: torch.device, folder: Path) -> str:
    p, train, test, shape = workload(name, args.epochs, device)
    timed(p, train, test, shape, None)  # warm-up
    ratios, writes, shares, cost = [], [], [], []
    for repeat in range(args.repeats):
        ckpt = Counting(folder / f"{name}.pt", {"bench": name}, minutes, device)
        order = (False, True) if repeat % 2 == 0 else (True, False)
        times = {}
        for with_ckpt in order:
            times[with_ckpt] = timed(p, train, test, shape, ckpt if with_ckpt else None)
        ratios.append(times[True] / times[False])
        shares.append(ckpt.seconds / (times[True] - ckpt.seconds))
        writes.append(ckpt.writes)
        cost.append(ckpt.seconds / max(ckpt.writes, 1))
        ckpt.remove()
    return (
        f"| {name} | {minutes:g} | {100 * statistics.median(shares):.2f} % "
        f"({100 * min(shares):.2f}-{100 * max(shares):.2f}) | {statistics.median(ratios):.3f}x "
        f"({min(ratios):.3f}-{max(ratios):.3f}) | {statistics.mean(writes):.0f} | "
        f"{1000 * statistics.mean(cost):.1f} ms | {statistics.median(times.values()):.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workloads", nargs="+", default=["demo", "cifar"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    start = time.perf_counter()
    checkpointing.code_digest()
    print(f"code digest (once per job): {1000 * (time.perf_counter() - start):.0f} ms")
    print(
        "| workload | checkpoint_minutes | added work / training (min-max) | time ratio "
        "(min-max) | writes/group | per write | group |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.workloads:
            for minutes in (DEFAULT_CHECKPOINT_MINUTES, 0.0):
                print(measure(name, minutes, args, device, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
