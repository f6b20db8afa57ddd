"""The reference's `custom_train_trans` / `custom_val_trans` as a protocol's
`train_transforms` / `test_transforms`: the key table's handler for them
(`reference_keys.KEYS`), and how their crops are fitted to the one size a score trains and
tests at."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from ddrank_steps.errors import ConfigError

if TYPE_CHECKING:
    from ddrank_steps.api.reference_keys import Draft


def transforms(d: Draft) -> None:
    """custom_train_trans / custom_val_trans as the protocol's lists, their crops fitted to
    the size the dataset trains at."""
    for ours, theirs in (
        ("train_transforms", "custom_train_trans"),
        ("test_transforms", "custom_val_trans"),
    ):
        if d.ref.get(theirs):
            d.protocol[ours] = _transform_list(d.ref[theirs], f"{d.where}.{theirs}")
    if d.protocol.get("train_transforms") and d.trained_size:
        where = f"{d.where}.custom_train_trans"
        _fit_crops(d.protocol["train_transforms"], d.trained_size, where, d.note)
    if d.protocol.get("test_transforms") and d.trained_size:
        # fitted like the train list, its Resize kept in proportion (Resize 72, CenterCrop
        # 64 tests at 64/72 of the image whatever the size)
        where = f"{d.where}.custom_val_trans"
        _fit_crops(d.protocol["test_transforms"], d.trained_size, where, d.note, resizes=True)


def _transform_list(spec, where: str) -> list:
    if not isinstance(spec, list):
        raise ConfigError(
            f"{where}: a list of {{name, args}} items (the reference's YAML format), got "
            f"{type(spec).__name__}"
        )
    return copy.deepcopy(spec)


# Crops whose output size is their `size` argument.
CROPS = ("RandomResizedCrop", "RandomCrop", "CenterCrop")


def _fit_crops(
    spec: list, size: int, where: str, note: Callable[[str], None], resizes: bool = False
) -> None:
    """Crops of a list that change the image size are set to the size the dataset is
    trained and tested at: ddrank keeps one resolution per score (the reference's ImageNet
    demo trains at 64 px and tests at 224 px). With `resizes`, a Resize before a crop is
    scaled with it, so the crop keeps its share of the image."""
    for i, item in enumerate(spec):
        args = item.get("args") if isinstance(item, dict) else None
        if item.get("name") not in CROPS or not isinstance(args, dict) or "size" not in args:
            continue
        value = args["size"]
        sizes = value if isinstance(value, (list, tuple)) else [value, value]
        if list(sizes) != [size, size]:
            args["size"] = size
            if resizes and isinstance(sizes[0], (int, float)) and sizes[0] > 0:
                _scale_resizes(spec[:i], size / sizes[0], where, note)
            note(
                f"{where}[{i}] {item['name']} size {value} -> {size}: ddrank trains and tests at "
                f"one resolution ({size} px); to train at {value} px, set the dataset's "
                f"image_size to {value}"
            )


def _scale_resizes(items: list, ratio: float, where: str, note: Callable[[str], None]) -> None:
    for j, item in enumerate(items):
        args = item.get("args") if isinstance(item, dict) else None
        if item.get("name") != "Resize" or not isinstance(args, dict):
            continue
        if isinstance(args.get("size"), int):
            old, args["size"] = args["size"], round(args["size"] * ratio)
            note(f"{where}[{j}] Resize size {old} -> {args['size']}, in proportion to the crop")
