"""Benchmark: a run in fp32 against the same run in bf16 (and fp16 on CUDA), and the
layout and evaluation batch that `ddrank_steps.training.precision` chooses per device.

Three parts, each measured in this one process:

1. **runs** (`--part runs`): the engine trains the same ConvNet-3 run in each precision
   for `--seeds` seeds, on real images: scikit-learn's digits
   - `digits`: the demo's protocol (config/config.yaml `digits-dsa`: 8x8 grey, width 32,
     DSA, 100 epochs, the LR grid with `best` selection) on a random 10-per-class subset;
   - `cifar`: a CIFAR-format protocol: the digits upsampled to 32x32 RGB, ConvNet-3 at its
     default width 128, DSA, batch 256, one LR (0.01), `--cifar-epochs` epochs, on a
     random 10-per-class subset.
   Seeds alternate between precisions, so a load change on a shared machine hits both.
   Printed: seconds per run and its ratio to fp32, and test accuracy mean and std over the
   seeds (is the bf16 mean within the fp32 seeds' spread?).
2. **layout** (`--part layout`): a training step of the CIFAR-format ConvNet-3 in each
   precision with contiguous and channels_last tensors.
3. **eval** (`--part eval`): evaluation throughput (images/s) at several batch sizes.

Run: `python benchmarks/bench_precision.py` (CPU, one thread) or `--device cuda`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddrank_steps import metric_registry
from ddrank_steps.data.datasets import digits
from ddrank_steps.models import build_model
from ddrank_steps.planning.keys import resolve_protocol, run_protocol
from ddrank_steps.training import engine, precision
from ddrank_steps.training.engine import RunGroup, Split

REPO = Path(__file__).resolve().parents[1]


def digit_splits(side: int, channels: int, device) -> tuple[Split, Split]:
    """The demo's digits (its 75/25 split), resized to side x side with `channels`,
    normalised by the train split's statistics."""
    raw = digits.load({})
    out = []
    for split in (raw.train, raw.test):
        images = split.images.float() / 16.0
        if side != images.shape[-1]:
            images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
        out.append(Split(images.repeat(1, channels, 1, 1), split.labels.clone()))
    mean = out[0].images.mean(dim=(0, 2, 3), keepdim=True)
    std = out[0].images.std(dim=(0, 2, 3), keepdim=True)
    for split in out:
        split.images = ((split.images - mean) / std).to(device)
        split.labels = split.labels.to(device)
    return out[0], out[1]


def subset(train: Split, ipc: int, seed: int) -> Split:
    """`ipc` random images of each class, drawn from `seed` (a round's random set)."""
    g = torch.Generator().manual_seed(seed)
    labels = train.labels.cpu()
    picks = []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
    chosen = torch.cat(picks).to(train.labels.device)
    return Split(train.images[chosen], train.labels[chosen])


def demo_protocol() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # defaults
    base = resolve_protocol(config["protocols"]["digits-dsa"], metric_registry.get("lrs_hard"))
    base.setdefault("labels", "hard")
    return base


def cifar_protocol(epochs: int) -> dict:
    return {
        "model": "ConvNet-3",
        "model_options": {},
        "labels": "hard",
        "augmentation": "dsa",
        "aug_params": {},
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "scheduler": "step",
        "step_size": None,
        "gamma": 0.1,
        "epochs": epochs,
        "batch_size": 256,
        "test_interval": max(1, epochs // 5),
        "select": "best",
        "lr": 0.01,
    }


def with_precision(base: dict, arithmetic: str) -> dict:
    """The canonical run protocol the train stage would receive."""
    source = "fixed" if base.get("lr") else "grid"
    return run_protocol({**base, "precision": arithmetic}, source)


def one_run(protocol: dict, train: Split, test: Split, shape, seed: int) -> tuple[float, float]:
    """(seconds, selected test accuracy) of the run over the protocol's LRs."""
    group = RunGroup(protocol, seed, train, test, None, shape, num_classes=10)
    lrs = protocol.get("lr_grid") or [protocol["lr"]]
    start = time.perf_counter()
    results, best = engine.train_group(group, lrs, show_progress=False)
    if train.images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, results[best].acc


def runs(args, device, precisions) -> None:
    cases = {
        "digits": (demo_protocol(), 8, 1),
        "cifar": (cifar_protocol(args.cifar_epochs), 32, 3),
    }
    print(f"\n## runs ({args.seeds} seeds, IPC 10, device {device}, {args.threads} thread(s))")
    print("| protocol | precision | s/run | ratio to fp32 | acc mean | acc std | in fp32 spread |")
    print("|---|---|---|---|---|---|---|")
    for name in args.protocols:
        base, side, channels = cases[name]
        train, test = digit_splits(side, channels, device)
        shape = (channels, side, side)
        timing = {p: [] for p in precisions}
        accs = {p: [] for p in precisions}
        for seed in range(args.seeds):
            chosen = subset(train, 10, seed)
            for arithmetic in precisions:
                seconds, acc = one_run(with_precision(base, arithmetic), chosen, test, shape, seed)
                timing[arithmetic].append(seconds)
                accs[arithmetic].append(acc)
        ref_time = statistics.mean(timing["fp32"])
        ref_mean = statistics.mean(accs["fp32"])
        ref_std = statistics.pstdev(accs["fp32"])
        for arithmetic in precisions:
            mean, std = statistics.mean(accs[arithmetic]), statistics.pstdev(accs[arithmetic])
            inside = (
                "—"
                if arithmetic == "fp32"
                else ("yes" if abs(mean - ref_mean) <= ref_std else "no")
            )
            print(
                f"| {name} | {arithmetic} | {statistics.mean(timing[arithmetic]):.2f} | "
                f"{ref_time / statistics.mean(timing[arithmetic]):.2f}x | {100 * mean:.2f} | "
                f"{100 * std:.2f} | {inside} |"
            )


def step_time(model, images, labels, arithmetic, device, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = precision.grad_scaler(arithmetic, device)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with precision.autocast(arithmetic, device):
            loss = F.cross_entropy(model(images), labels)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def layout(args, device, precisions) -> None:
    n = args.layout_batch
    print(f"\n## layout: ConvNet-3 (width 128) step on {n} 3x32x32 images, device {device}")
    print("| precision | contiguous ms | channels_last ms | channels_last / contiguous |")
    print("|---|---|---|---|")
    images = torch.randn(n, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (n,), device=device)
    for arithmetic in precisions:
        times = {}
        for fmt in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            model = build_model("ConvNet-3", 10, 3, (32, 32), {}).to(device, memory_format=fmt)
            times[fmt] = step_time(
                model, images.contiguous(memory_format=fmt), labels, arithmetic, device, args.steps
            )
        a, b = times[torch.contiguous_format], times[torch.channels_last]
        print(f"| {arithmetic} | {1000 * a:.1f} | {1000 * b:.1f} | {b / a:.2f}x |")


@torch.inference_mode()
def eval_throughput(args, device, precisions) -> None:
    n = args.eval_images
    print(f"\n## eval: ConvNet-3 (width 128) on {n:,} 3x32x32 images, device {device}")
    print("| precision | " + " | ".join(f"batch {b} img/s" for b in args.eval_batches) + " |")
    print("|---|" + "---|" * len(args.eval_batches))
    images = torch.randn(n, 3, 32, 32, device=device)
    model = build_model("ConvNet-3", 10, 3, (32, 32), {}).to(device).eval()
    for arithmetic in precisions:
        row = []
        for batch in args.eval_batches:
            best = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                with precision.autocast(arithmetic, device):
                    for s in range(0, len(images), batch):
                        model(images[s : s + batch]).argmax(1)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            row.append(f"{len(images) / best:.0f}")
        print(f"| {arithmetic} | " + " | ".join(row) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--part", nargs="+", default=["runs", "layout", "eval"])
    p.add_argument("--protocols", nargs="+", default=["digits", "cifar"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--cifar-epochs", type=int, default=100)
    p.add_argument("--steps", type=int, default=5, help="timed steps per layout case")
    p.add_argument("--eval-batches", type=int, nargs="+", default=[250, 500, 1000, 2000])
    # smaller only for benchmarks/gpu_check.py --quick, which checks that the script runs
    p.add_argument("--eval-images", type=int, default=4000, help="images of the eval part")
    p.add_argument("--layout-batch", type=int, default=256, help="images of a layout step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    for arithmetic in precisions:
        precision.check_supported(arithmetic, device)
    print(f"torch {torch.__version__}, native CPU bf16: {precision.native_cpu_bf16()}")
    parts = {"runs": runs, "layout": layout, "eval": eval_throughput}
    for part in args.part:
        parts[part](args, device, precisions)


if __name__ == "__main__":
    main()
