"""SVHN (cropped digits) from the MATLAB files torchvision downloads.

Layout (torchvision's `SVHN(root, split=…, download=True)` puts them in root itself):

    {root}/train_32x32.mat, {root}/test_32x32.mat

Each holds `X`, uint8 (32, 32, 3, N) (height, width, channel, sample), and `y`, (N, 1)
labels 1..10 where 10 stands for the digit 0. As torchvision does, 10 becomes 0 so
class ids are the digits. The `extra` split is not used (DC/DSA/MTT train on `train`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.data.datasets import Facts, PixelSplit, RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import (
    loader_root,
    plan_root,
    require_file,
    root_fix,
)
from ddrank_steps.errors import InputError

log = logging.getLogger("ddrank.datasets.svhn")

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
# DC/DSA's SVHN statistics.
MEAN = [0.4377, 0.4438, 0.4728]
STD = [0.1980, 0.2010, 0.1970]
FACTS = Facts(10, 3, 255.0, tuple(MEAN), tuple(STD), tuple(str(c) for c in range(10)))
FIX = root_fix("SVHN", "the folder that holds train_32x32.mat and test_32x32.mat")


def layout(root) -> str:
    return f"expected {root}/train_32x32.mat and {root}/test_32x32.mat (torchvision's SVHN layout)"


def _read(path: Path, root: Path) -> PixelSplit:
    import scipy.io

    require_file(path, layout(root), FIX)
    try:
        blob = scipy.io.loadmat(str(path))
    except Exception as exc:  # every unreadable .mat is the same problem for the user
        raise InputError(
            path,
            "file",
            f"cannot be read as a MATLAB file ({type(exc).__name__}: {exc}); {layout(root)}",
            "download the dataset again",
        ) from None
    for key in ("X", "y"):
        if key not in blob:
            keys = sorted(k for k in blob if not k.startswith("__"))
            raise InputError(path, key, f"missing (variables: {keys}); {layout(root)}", FIX)
    x, y = np.asarray(blob["X"]), np.asarray(blob["y"])
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise InputError(
            path, "X", f"is {x.dtype} {x.shape}; expected uint8 (32, 32, 3, N)", "download again"
        )
    labels = y.reshape(-1).astype(np.int64)
    if len(labels) != x.shape[3]:
        raise InputError(path, "y", f"{len(labels)} labels for {x.shape[3]} images", "download")
    if len(labels) and (labels.min() < 0 or labels.max() > 10):
        raise InputError(
            path,
            "y",
            f"labels span [{labels.min()}, {labels.max()}]; expected 1..10 (10 = digit 0)",
            "download the dataset again",
        )
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (N, C, H, W)
    return PixelSplit(images=torch.from_numpy(images), labels=torch.from_numpy(labels))


def _download(root: Path) -> None:
    import torchvision

    log.info("downloading SVHN to %s (skipped when already there)", root)
    for split in FILES:
        torchvision.datasets.SVHN(str(root), split=split, download=True)


def load(settings: dict) -> RawDataset:
    root = loader_root(settings, "SVHN", layout, FIX, default="data/svhn", fetch=_download)
    return RawDataset(
        name="SVHN",
        classes=list(FACTS.classes),
        max_value=FACTS.max_value,
        train=_read(root / FILES["train"], root),
        test=_read(root / FILES["test"], root),
        mean=list(MEAN),
        std=list(STD),
        notes={"folder": str(root), "format": "SVHN cropped-digits .mat files"},
    )


def check_layout(settings: dict) -> None:
    """At plan time: root and both .mat files are there (unless download: true)."""
    root = plan_root(settings, "SVHN", layout, FIX)
    if root is None:
        return
    for name in FILES.values():
        require_file(root / name, layout(root), FIX)


def register() -> None:
    register_source("SVHN", load, size=32, check_layout=check_layout, facts=FACTS)
