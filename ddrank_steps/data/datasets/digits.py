"""scikit-learn's embedded handwritten digits: 1,797 real 8x8 grey images, 10 classes.

The package ships the data, so the default workflow runs with no download. It has
no official test split; we draw a stratified one from a fixed seed so that every
user gets the same split.
"""

from __future__ import annotations

import numpy as np
import torch

from ddrank_steps.data.datasets import Facts, PixelSplit, RawDataset, register_source

# 0..16 grey levels; no fixed mean/std: measured on the train split when preparing
FACTS = Facts(num_classes=10, channels=1, max_value=16.0, classes=tuple(str(c) for c in range(10)))


def load(settings: dict) -> RawDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # values 0..16, stored losslessly as uint8
    labels = bunch.target.astype(np.int64)
    test_fraction = float(settings.get("test_fraction", 0.25))
    rng = np.random.default_rng(int(settings.get("split_seed", 0)))
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(len(idx) * test_fraction))
        test_mask[rng.choice(idx, size=n_test, replace=False)] = True

    def split(mask):
        return PixelSplit(
            images=torch.from_numpy(images[mask][:, None]).contiguous(),
            labels=torch.from_numpy(labels[mask]),
        )

    return RawDataset(
        name="digits",
        classes=list(FACTS.classes),
        max_value=FACTS.max_value,
        train=split(~test_mask),
        test=split(test_mask),
        notes={"test_fraction": test_fraction, "split_seed": int(settings.get("split_seed", 0))},
    )


def register() -> None:
    register_source("digits", load, size=8, facts=FACTS)
