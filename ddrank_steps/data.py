"""Reading the cached artifacts that training consumes: prepared datasets and sets.

Two on-disk forms:
- a prepared dataset (`data.pt` + `meta.json`): raw train/test(/val) splits, normalised on
  load. A split is cached as uint8 tensors (`images`, `labels`) or, for a dataset larger
  than its cache limit, streamed: an index of image files (`root`, `paths`, `size`,
  `labels`) that loads as a `streaming.StreamedImages`;
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
    storage: str = "cached"  # or "streamed"

    @classmethod
    def load(cls, path: str | Path) -> DatasetMeta:
        raw = read_json(path)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def normalise(images: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    x = images.float() / meta.max_value
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    return (x - mean) / std


def _part(data_path: str | Path, split: str) -> dict | None:
    return torch.load(data_path, map_location="cpu", weights_only=True).get(split)


def _streamed(part: dict, meta: DatasetMeta, workers: int):
    from ddrank_steps.streaming import StreamedImages

    return StreamedImages(
        root=part["root"],
        paths=part["paths"],
        size=int(part["size"]),
        mean=list(meta.mean),
        std=list(meta.std),
        max_value=meta.max_value,
        workers=workers,
    )


def load_split(data_path: str | Path, split: str, meta: DatasetMeta, workers: int = 0):
    """Normalised images and labels of one split of a prepared dataset (None if absent).

    A streamed split's images are a `StreamedImages` (decoded with `workers` processes).
    """
    part = _part(data_path, split)
    if part is None:
        return None
    if "paths" in part:
        return _streamed(part, meta, workers), part["labels"].long()
    return normalise(part["images"], meta), part["labels"].long()


def load_labels(data_path: str | Path, split: str) -> torch.Tensor:
    return _part(data_path, split)["labels"].long()


def load_pixels(
    data_path: str | Path, split: str, idx: torch.Tensor, meta: DatasetMeta, workers: int = 0
) -> torch.Tensor:
    """The raw stored pixels (uint8, 0..max_value) of the given images of a split."""
    part = _part(data_path, split)
    if "paths" in part:
        return _streamed(part, meta, workers).raw(idx)
    return part["images"][idx]


def source_files(data_path: str | Path, split: str, idx: torch.Tensor) -> list[str] | None:
    """The image files of the given images (None when the split is cached tensors from a
    format without per-image files)."""
    part = _part(data_path, split)
    files = part.get("paths", part.get("files"))
    if files is None:
        return None
    return [files[i] for i in idx.tolist()]


def load_set(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
