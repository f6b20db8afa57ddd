"""Reading the cached artifacts that training consumes: prepared datasets and sets.

Two on-disk forms:
- a prepared dataset (`data.pt` + `meta.json`): raw train/test(/val) splits, normalised on load;
- a set file (`*.pt`): `images` float32 (N, C, H, W) already in the dataset's normalised
  space, `labels` int64 (N,), optional `soft_labels` (N, K) and `lr`, and `info` (provenance).
  Random subsets, reference sets and imported syn sets all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddrank_steps.io import read_json


@dataclass
class DatasetMeta:
    name: str
    num_classes: int
    channels: int
    height: int
    width: int
    mean: list[float]
    std: list[float]
    max_value: float
    classes: list[str]

    @classmethod
    def load(cls, path: str | Path) -> DatasetMeta:
        raw = read_json(path)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


def normalise(images: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    x = images.float() / meta.max_value
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    return (x - mean) / std


def load_split(data_path: str | Path, split: str, meta: DatasetMeta):
    """Normalised images and labels of one split of a prepared dataset."""
    blob = torch.load(data_path, map_location="cpu", weights_only=True)
    if split not in blob:
        return None
    part = blob[split]
    return normalise(part["images"], meta), part["labels"].long()


def load_set(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
