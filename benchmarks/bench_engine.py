"""Benchmark: the engine's on-device tiny-set loop against a plain DataLoader loop.

docs/architecture.md ("Tiny sets on the device") says tiny sets live wholly on the
device, with no DataLoader and no per-step host synchronisation. This measures what that
buys: the same model, optimizer, epochs and batch size, trained by
- baseline: the textbook loop (TensorDataset + DataLoader(shuffle) + .item() per step);
- engine:   `ddrank_steps.training.engine.train_one` (whole-tensor indexing, loss kept on device).
Both run in this process, one after the other, several times; the ratio of medians is
printed. Run: `python benchmarks/bench_engine.py [--device cuda] [--ipc 10 50]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_protocols import convnet_protocol

from ddrank_steps.models import build_model
from ddrank_steps.training.engine import RunGroup, Split, resolve_device, train_one


def protocol(epochs: int, batch: int, width: int, shape) -> dict:
    return convnet_protocol(epochs, batch, model_options={"width": width}, lr=0.01)


def baseline(p, train: Split, shape, classes, device) -> None:
    torch.manual_seed(0)
    model = build_model(p["model"], classes, shape[0], shape[1:], p["model_options"]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(
        TensorDataset(train.images.cpu(), train.labels.cpu()),
        batch_size=p["batch_size"],
        shuffle=True,
    )
    for _ in range(p["epochs"]):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the usual per-step logging sync


def time_it(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipc", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--size", type=int, default=32, help="image side (3 channels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    classes, shape = 10, (3, args.size, args.size)
    print(f"device {device}, threads {args.threads}, ConvNet-3 width {args.width}, {shape}")
    print(f"{'ipc':>4} {'baseline s':>11} {'engine s':>9} {'speed-up':>9}")
    for ipc in args.ipc:
        n = classes * ipc
        g = torch.Generator().manual_seed(0)
        train = Split(
            torch.randn(n, *shape, generator=g).to(device),
            (torch.arange(n) % classes).to(device),
        )
        test = Split(train.images[:100], train.labels[:100])
        p = protocol(args.epochs, args.batch, args.width, shape)
        t_base = time_it(
            lambda p=p, train=train: baseline(p, train, shape, classes, device), args.repeats
        )
        t_eng = time_it(
            lambda p=p, train=train, test=test: train_one(
                RunGroup(p, 0, train, test, None, shape, classes), 0.01
            ),
            args.repeats,
        )
        print(f"{ipc:>4} {t_base:>11.3f} {t_eng:>9.3f} {t_base / t_eng:>8.2f}x")


if __name__ == "__main__":
    main()
