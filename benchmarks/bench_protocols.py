"""The run protocol the benchmarks train: ConvNet-3 with SGD (momentum 0.9, weight decay
5e-4), no augmentation, no schedule and one evaluation at the end, unless a benchmark
changes a key. Canonical, as the train stage receives it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddrank_steps.planning.keys import run_protocol

BASE = {
    "model": "ConvNet-3",
    "model_options": {},
    "labels": "hard",
    "augmentation": "none",
    "aug_params": {},
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "scheduler": "none",
    "step_size": None,
    "gamma": 0.1,
    "select": "final",
}


def convnet_protocol(epochs: int, batch: int, **changes) -> dict:
    """BASE trained for `epochs` at `batch`, evaluated at the end (or every
    `test_interval`), at a fixed `lr` or over an `lr_grid` given in `changes`."""
    protocol = {**BASE, "epochs": epochs, "batch_size": batch, "test_interval": epochs}
    protocol.update(changes)
    return run_protocol(protocol, "grid" if protocol.get("lr_grid") else "fixed")
