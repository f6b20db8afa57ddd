"""Material several test modules share: one tiny training protocol to vary per test."""

from __future__ import annotations

import copy

from ddrank_steps.plan import run_protocol

# A 2-block ConvNet of width 4, a few epochs: trains in milliseconds on 8x8 toy images.
TINY_PROTOCOL = {
    "model": "ConvNet-2",
    "model_options": {"width": 4},
    "labels": "hard",
    "augmentation": "none",
    "aug_params": {},
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "scheduler": "step",
    "step_size": None,
    "gamma": 0.1,
    "epochs": 3,
    "batch_size": 8,
    "test_interval": 2,
    "select": "best",
    "lr": None,
    "lr_grid": [0.01, 0.1],
}


def tiny_config(**changes) -> dict:
    """The protocol as a config gives it (before the plan resolves the LR)."""
    return {**copy.deepcopy(TINY_PROTOCOL), **changes}


def tiny_protocol(lr_source: str = "grid", labels: dict | None = None, **changes) -> dict:
    """The canonical run protocol the train stage receives."""
    return run_protocol(tiny_config(**changes), lr_source, labels)
