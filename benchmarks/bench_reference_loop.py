"""Benchmark: an LR grid trained the way the reference's loop does it, against the engine.

The reference (`ddranking` 0.2.0, its `metrics` evaluators' training loop) trains
each run of an LR search through a fresh `DataLoader` (RandomSampler, `num_workers`
processes) over a TensorDataset on the host, moves every batch to the device, logs the
loss and a train accuracy with `.item()` at every step, and validates through a test
loader over a torchvision dataset: PIL images through `ToTensor` and `Normalize` at every
evaluation, decoded again by worker processes started again each time. This script
writes such a loop itself (no reference code) and times it against
`engine.train_group` on the same set, model, optimizer, LR grid, epochs and evaluation
epochs, in this process:
- reference-style: the loop above, one run per LR;
- engine: tiny set and test split on the device, no DataLoader, no per-step sync, the
  test split normalised once (as prepare_dataset does, outside the timing), and the LRs
  together on a GPU (`resources.concurrent_lrs: auto`; one at a time on the CPU).
Ratios are reference-style time / engine time.

Run: `python benchmarks/bench_reference_loop.py [--device cuda] [--ipc 10 50] [--workers N]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_protocols import convnet_protocol

from ddrank_steps.models import build_model
from ddrank_steps.seeding import derive_seed
from ddrank_steps.training.engine import (
    RunGroup,
    Split,
    concurrent_lrs,
    resolve_device,
    train_group,
)
from ddrank_steps.training.optimisers import make_optimizer, make_scheduler

CLASSES = 10
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]  # CIFAR-10's
SEED = 0


def protocol(epochs: int, interval: int, batch: int, width: int, lrs: list[float]) -> dict:
    return convnet_protocol(
        epochs,
        batch,
        model_options={"width": width},
        scheduler="step",
        step_size=max(epochs // 2, 1),
        test_interval=interval,
        select="best",
        lr_grid=lrs,
    )


class PilImages(Dataset):
    """A test split as torchvision's CIFAR10 serves it: uint8 HWC pixels made a PIL image
    and run through the transform, one image per call."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, transform):
        self.pixels, self.labels, self.transform = pixels, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.pixels[i])), int(self.labels[i])


def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Top-1 in percent over the loader, as the reference's `validate`."""
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    model.train()
    return 100.0 * correct / total


def reference_style_grid(p: dict, train: Split, test_loader: DataLoader, args, device) -> list:
    """One run per LR, each through its own DataLoader with workers; the best evaluated
    accuracy of each (the reference's `best_acc1`)."""
    shape = tuple(train.images.shape[1:])
    accs = []
    for lr in p["lr_grid"]:
        torch.manual_seed(derive_seed("init", SEED))
        model = build_model(p["model"], CLASSES, shape[0], shape[1:], p["model_options"])
        model = model.to(device)
        optimizer = make_optimizer(p, model.parameters(), lr)
        scheduler = make_scheduler(p, optimizer)
        dataset = TensorDataset(train.images, train.labels)
        loader = DataLoader(
            dataset,
            batch_size=p["batch_size"],
            sampler=RandomSampler(dataset),
            num_workers=args.workers,
        )
        best = 0.0
        for epoch in range(p["epochs"]):
            model.train()
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                out = model(images)
                loss = F.cross_entropy(out, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                # the per-step logging: a host sync for the loss and one for the accuracy
                loss.item()
                (out.argmax(1) == labels).float().mean().item()
            scheduler.step()
            if (epoch + 1) % p["test_interval"] == 0:
                best = max(best, validate(model, test_loader, device))
        accs.append(best / 100.0)
    return accs


def engine_grid(p: dict, train: Split, test: Split, device: torch.device) -> list:
    shape = tuple(train.images.shape[1:])
    group = RunGroup(p, SEED, train, test, None, shape, CLASSES)
    together = concurrent_lrs("auto", device)
    results, _ = train_group(group, p["lr_grid"], show_progress=False, concurrent=together)
    return [r.acc for r in results]


def timed(device: torch.device, fn, *args) -> tuple[float, list]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def data(ipc: int, test_size: int, size: int):
    """A learnable CIFAR-shaped problem: uint8 pixels of noise around a pattern per class.
    The train set is normalised floats (a distilled set as a tensor), the test split is
    kept as pixels for the PIL path and normalised once for the engine."""
    rng = np.random.default_rng(ipc)
    patterns = rng.integers(40, 216, size=(CLASSES, size, size, 3))

    def pixels(n):
        labels = np.arange(n) % CLASSES
        noise = rng.normal(0, 40, size=(n, size, size, 3))
        return np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8), labels

    def normalised(px):
        x = torch.from_numpy(px).permute(0, 3, 1, 2).float() / 255.0
        return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)

    train_px, train_labels = pixels(CLASSES * ipc)
    test_px, test_labels = pixels(test_size)
    train = Split(normalised(train_px), torch.from_numpy(train_labels))
    test = Split(normalised(test_px), torch.from_numpy(test_labels))
    return train, test, (test_px, test_labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipc", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--interval", type=int, default=10, help="test_interval (LRS-hard's)")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.005, 0.01, 0.05, 0.1])
    ap.add_argument("--batch", type=int, default=256, help="the reference's syn_batch_size")
    ap.add_argument("--width", type=int, default=128, help="ConvNet-3's default")
    ap.add_argument("--test", type=int, default=10000, help="test images (CIFAR-10's 10,000)")
    ap.add_argument("--test-batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader processes")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"device {device}, threads {args.threads}, workers {args.workers}, ConvNet-3 width "
        f"{args.width}, 3x32x32, {len(args.lrs)} LRs, {args.epochs} epochs, evaluated every "
        f"{args.interval}, {args.test} test images, LRs together: "
        f"{concurrent_lrs('auto', device)}"
    )
    print(f"{'ipc':>4} {'reference-style s':>18} {'engine s':>9} {'speed-up':>9}  accuracies")
    pil = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for ipc in args.ipc:
        train, test, (test_px, test_labels) = data(ipc, args.test, 32)
        # built once per metric in the reference; its workers start at every evaluation
        test_loader = DataLoader(
            PilImages(test_px, test_labels, pil),
            batch_size=args.test_batch,
            shuffle=False,
            num_workers=args.workers,
        )
        p = protocol(args.epochs, args.interval, args.batch, args.width, args.lrs)
        t_ref, acc_ref = timed(device, reference_style_grid, p, train, test_loader, args, device)
        on_device = Split(train.images.to(device), train.labels.to(device))
        test_on_device = Split(test.images.to(device), test.labels.to(device))
        t_eng, acc_eng = timed(device, engine_grid, p, on_device, test_on_device, device)
        print(
            f"{ipc:>4} {t_ref:>18.2f} {t_eng:>9.2f} {t_ref / t_eng:>8.2f}x  "
            f"reference-style {', '.join(f'{a:.3f}' for a in acc_ref)}; "
            f"engine {', '.join(f'{a:.3f}' for a in acc_eng)}"
        )


if __name__ == "__main__":
    main()
