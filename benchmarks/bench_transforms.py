"""Benchmark: a protocol's train_transforms on device batches against the reference's way.

The reference applies its custom_train_trans per image inside a Dataset, read by a
DataLoader. Here the list runs per image on batches already on the training device
(`transforms.batches.BatchTransform`), so sets never leave the device. This measures, on
CIFAR-sized batches and the reference's CIFAR list (RandomCrop 32 pad 4, flip, ToTensor,
Normalize):
- baseline:  a Dataset applying the same list per image, DataLoader(batch, shuffle), the
             batch then moved to the device (workers 0, as a tiny set needs no more);
- ours:      BatchTransform on the device batch;
- and, for scale, one ConvNet-3 training step on such a batch.
All run in this process, several times; medians and the ratio are printed.
Run: `python benchmarks/bench_transforms.py [--device cuda] [--batch 256]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_engine import time_it  # a sibling script: its folder is on sys.path

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.models import build_model
from ddrank_steps.training.engine import resolve_device
from ddrank_steps.transforms.batches import BatchTransform
from ddrank_steps.transforms.build import build_transforms

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
REFERENCE_LIST = [
    {"name": "RandomCrop", "args": {"size": 32, "padding": 4}},
    {"name": "RandomHorizontalFlip", "args": {"p": 0.5}},
    {"name": "ToTensor"},
    {"name": "Normalize", "args": {"mean": MEAN, "std": STD}},
]


class PerImage(Dataset):
    """The reference's shape: [0, 1] images transformed one by one as they are read."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor):
        spec = [i for i in REFERENCE_LIST if i["name"] != "ToTensor"]  # tensors, not PIL
        self.pixels, self.labels, self.transform = pixels, labels, build_transforms(spec)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.pixels[i]), self.labels[i]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=8, help="batches per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n = args.batch * args.batches
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(n, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    normalised = ((pixels - mean) / std).to(device)

    loader = DataLoader(PerImage(pixels, labels), batch_size=args.batch, shuffle=True)

    def baseline():
        for images, _ in loader:
            images.to(device)

    meta = DatasetMeta("CIFAR10", 10, 3, 32, 32, MEAN, STD, 255.0, [str(i) for i in range(10)])
    ours_transform = BatchTransform(REFERENCE_LIST, meta, "train_transforms")
    ours_transform.reseed(0)

    def ours():
        for start in range(0, n, args.batch):
            ours_transform(normalised[start : start + args.batch])

    model = build_model("ConvNet-3", 10, 3, (32, 32), {}).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    targets = labels.to(device)

    def steps():
        for start in range(0, n, args.batch):
            x, y = normalised[start : start + args.batch], targets[start : start + args.batch]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    for fn in (baseline, ours, steps):  # warm-up: kernels, allocator, first DataLoader
        fn()
    t_base = time_it(baseline, args.repeats) / args.batches
    t_ours = time_it(ours, args.repeats) / args.batches
    t_step = time_it(steps, args.repeats) / args.batches
    print(f"device {device}, batch {args.batch}, threads {args.threads}")
    print(f"reference per-image Dataset + DataLoader: {1000 * t_base:8.2f} ms/batch")
    print(f"BatchTransform on the device batch:       {1000 * t_ours:8.2f} ms/batch")
    print(f"ConvNet-3 training step (for scale):       {1000 * t_step:8.2f} ms/batch")
    print(f"ours / baseline: {t_ours / t_base:.2f}x; transforms / step: {t_ours / t_step:.2f}x")


if __name__ == "__main__":
    main()
