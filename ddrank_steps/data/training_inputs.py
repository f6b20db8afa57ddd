"""Reading the cached artifacts that training consumes: prepared datasets and sets.

Two on-disk forms:
- a prepared dataset (`data.pt` + `meta.json`): raw train/test(/val) splits, normalised on
  load (or, for a dataset with `zca`, ZCA-whitened with the fit stored under `zca`). A
  split is cached as uint8 tensors (`images`, `labels`) or, for a dataset larger than its
  cache limit, streamed: an index of image files (`root`, `paths`, `size`, `labels`) that
  loads as a `streaming.StreamedImages`;
- a set file (`*.pt`): `images` float32 (N, C, H, W) already in the dataset's normalised
  (or ZCA) space, `labels` int64 (N,), optional `soft_labels` (N, K) and `lr`, and `info`
  (provenance). Random subsets, reference sets and imported syn sets all use it.
Both are read through `reading` (one reader for every result file), so a damaged one
fails with its path and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddrank_steps.data.zca import ZCA
from ddrank_steps.errors import InputError
from ddrank_steps.runtime.checked_read import (
    checked_field,
    load_torch,
    number,
    read_cached_json,
    rebuild_fix,
    tensor,
)

# What the ZCA of a dataset is fitted on (and applied to), recorded as `zca_input`:
# "pixels" = the stored pixels scaled to [0, 1] with no mean/std normalisation (the
# reference's ToTensor-only pipeline for CIFAR/TinyImageNet with use_zca); "normalised" =
# the normalised images (the reference's ImageNet subsets, which normalise even with ZCA).
ZCA_INPUTS = ("pixels", "normalised")


# The fields of meta.json that every reader uses, and their JSON kinds.
_META_FIELDS = {
    "name": str,
    "num_classes": int,
    "channels": int,
    "height": int,
    "width": int,
    "mean": list,
    "std": list,
    "max_value": int | float,
    "classes": list,
}


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
    # Dataset-level ZCA (absent from meta files written before it: off).
    zca: bool = False
    zca_eps: float | None = None
    zca_input: str | None = None  # one of ZCA_INPUTS

    @classmethod
    def load(cls, path: str | Path) -> DatasetMeta:
        """meta.json, every field a job uses checked (a damaged one names the field)."""
        raw = read_cached_json(path)
        if not isinstance(raw, dict):
            raise InputError(path, "file", "is not a JSON object", rebuild_fix(path))
        for key, kind in _META_FIELDS.items():
            checked_field(raw, key, kind, path, key)
        for key in ("mean", "std", "classes"):
            if not raw[key]:
                raise InputError(path, key, "is empty", rebuild_fix(path))
        for key in ("mean", "std"):
            for i, value in enumerate(raw[key]):
                number(value, path, f"{key}[{i}]")
        if len(raw["classes"]) != raw["num_classes"]:
            problem = f"names {len(raw['classes'])} classes, num_classes is {raw['num_classes']}"
            raise InputError(path, "classes", problem, rebuild_fix(path))
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> DatasetMeta:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def normalise(images: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    x = images.float() / meta.max_value
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    return (x - mean) / std


def _blob(data_path: str | Path) -> dict:
    blob = load_torch(data_path)
    if not isinstance(blob, dict):
        raise InputError(data_path, "file", "is not a dict of splits", rebuild_fix(data_path))
    return blob


def checked_part(blob: dict, data_path: str | Path, split: str) -> dict | None:
    """A split of a prepared dataset (None for an absent `val`), checked: cached images
    (N, C, H, W) or a streamed index (`root`, `paths`), and one label per image."""
    fix = rebuild_fix(data_path)
    part = blob.get(split)
    if part is None:
        if split == "val":
            return None
        raise InputError(data_path, split, "missing", fix)
    if not isinstance(part, dict):
        raise InputError(data_path, split, "is not a dict", fix)
    labels = tensor(part, "labels", data_path, f"{split}.labels", ndim=1)
    if "paths" in part:
        checked_field(part, "root", str, data_path, f"{split}.root")
        count = len(checked_field(part, "paths", list, data_path, f"{split}.paths"))
    else:
        count = len(tensor(part, "images", data_path, f"{split}.images", ndim=4))
    if len(labels) != count:
        problem = f"has {len(labels)} labels for {count} images"
        raise InputError(data_path, f"{split}.labels", problem, fix)
    return part


def _part(data_path: str | Path, split: str) -> dict | None:
    return checked_part(_blob(data_path), data_path, split)


def zca_from_blob(blob: dict, meta: DatasetMeta) -> ZCA | None:
    """The dataset's ZCA fit (None when the dataset has none)."""
    if not meta.zca:
        return None
    if "zca" not in blob:
        raise ValueError(
            f"dataset {meta.name}: meta.json says zca but data.pt holds no fit; "
            "rerun prepare_dataset"
        )
    return ZCA.from_dict(blob["zca"])


def load_zca(data_path: str | Path, meta: DatasetMeta) -> ZCA | None:
    return zca_from_blob(_blob(data_path), meta) if meta.zca else None


def zca_input(images: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    """Stored pixels in the space the dataset's ZCA is fitted in (see ZCA_INPUTS)."""
    if meta.zca_input == "normalised":
        return normalise(images, meta)
    if meta.zca_input == "pixels":
        return images.float() / meta.max_value
    raise ValueError(f"dataset {meta.name}: unknown zca_input {meta.zca_input!r}")


def to_training_space(images: torch.Tensor, meta: DatasetMeta, zca: ZCA | None) -> torch.Tensor:
    """Stored pixels as training sees them: normalised, or ZCA-whitened when `zca`."""
    if zca is None:
        return normalise(images, meta)
    return zca.apply(zca_input(images, meta))


def _streamed(part: dict, meta: DatasetMeta, workers: int):
    from ddrank_steps.data.streaming import StreamedImages

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

    A dataset with `zca` gives every split ZCA-whitened with the train split's fit, so
    everything built from it (rdm subsets, reference sets, real-hard training, evaluation)
    is in ZCA space. A streamed split's images are a `StreamedImages` (decoded with
    `workers` processes); streamed datasets have no ZCA (prepare_dataset refuses it).
    """
    blob = _blob(data_path)
    part = checked_part(blob, data_path, split)
    if part is None:
        return None
    if "paths" in part:
        if meta.zca:
            raise ValueError(f"dataset {meta.name}: ZCA needs a cached dataset, not a streamed one")
        return _streamed(part, meta, workers), part["labels"].long()
    images = to_training_space(part["images"], meta, zca_from_blob(blob, meta))
    return images, part["labels"].long()


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
    """A set file, checked: finite images (N, C, H, W), N labels, and soft labels (N, K)
    when it has them."""
    blob = load_torch(path)
    images = tensor(blob, "images", path, "images", ndim=4)
    fields = {"labels": tensor(blob, "labels", path, "labels", ndim=1)}
    if blob.get("soft_labels") is not None:
        fields["soft_labels"] = tensor(blob, "soft_labels", path, "soft_labels", ndim=2)
    for key, value in fields.items():
        if len(value) != len(images):
            problem = f"has {len(value)} rows for {len(images)} images"
            raise InputError(path, key, problem, rebuild_fix(path))
    return blob
