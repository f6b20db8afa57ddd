"""Optimizers and LR schedules of a protocol (the reference's names and semantics).

Schedules step once per epoch. `cosine` is the reference's quarter cosine: the
factor 0.5·(1 + cos(π·e / (2·epochs))) falls from 1.0 to 0.5 (not 0) at the last
epoch. It is kept for parity with published numbers; `cosineannealing` is the
usual full cosine to 0.
"""

from __future__ import annotations

import math

import torch

from ddrank_steps.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "cosineannealing")


def make_optimizer(protocol: dict, params, lr: float) -> torch.optim.Optimizer:
    name = protocol["optimizer"]
    wd = protocol["weight_decay"]
    momentum = protocol["momentum"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(momentum), weight_decay=wd)
    if name in ("adam", "adamw"):
        # As the reference: momentum is used as Adam's betas only when it is a pair.
        betas = tuple(momentum) if isinstance(momentum, list | tuple) else (0.9, 0.999)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, weight_decay=wd, betas=betas)
    raise ConfigError(f"protocol optimizer '{name}' is unknown; valid: {list(OPTIMIZERS)}")


def make_scheduler(protocol: dict, optimizer: torch.optim.Optimizer):
    name = protocol["scheduler"]
    epochs = protocol["epochs"]
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    if name == "step":
        step = protocol.get("step_size")
        if not step:
            raise ConfigError("protocol scheduler 'step' needs step_size (epochs between decays)")
        gamma = protocol.get("gamma", 0.1)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=gamma)
    if name == "cosine":

        def quarter_cosine(e: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * e / (2 * epochs))) if e <= epochs else 0.0

        return torch.optim.lr_scheduler.LambdaLR(optimizer, quarter_cosine)
    if name == "cosineannealing":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    raise ConfigError(f"protocol scheduler '{name}' is unknown; valid: {list(SCHEDULERS)}")
