"""Any ImageFolder tree declared in the config (source: ImageFolder).

    {root}/train/<class>/…  (images found recursively, torchvision's extensions)
    {root}/test/<class>/…   or {root}/val/<class>/… (test wins when both exist)

Classes are the sorted subfolder names of train/ (torchvision's ImageFolder ids), or
the config's `classes` list, in its order. A test folder is matched to its class by
name, so a test split that lacks a class keeps the other labels right. `image_size`
is required (every image is decoded to 3 x S x S); `mean`/`std` default to the train
split's own statistics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ddrank_steps.data.datasets import RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import (
    require_folder,
    require_root,
    root_fix,
    root_setting,
)
from ddrank_steps.data.datasets.trees import class_tree_split, image_size
from ddrank_steps.data.image_files import class_folders
from ddrank_steps.errors import ConfigError, InputError

log = logging.getLogger("ddrank.datasets.folder")

TEST_FOLDERS = ("test", "val")
FIX = root_fix("ImageFolder", "the tree's folder", download=False)


def layout(root) -> str:
    return (
        f"expected {root}/train/<class>/… and {root}/test/<class>/… (or {root}/val/<class>/…), "
        "one folder per class holding png/jpg images (torchvision's ImageFolder layout)"
    )


def _classes(settings: dict, train_dir: Path, root: Path) -> list[str]:
    found = class_folders(train_dir)
    if not found:
        raise InputError(train_dir, "folder", f"holds no class folders; {layout(root)}", FIX)
    wanted = settings.get("classes")
    if wanted is None:
        return found
    wanted = [str(c) for c in wanted]
    if len(set(wanted)) != len(wanted):
        raise ConfigError("datasets.<name>.classes lists a class twice")
    missing = [c for c in wanted if c not in found]
    if missing:
        raise ConfigError(
            f"datasets.<name>.classes: {missing} have no folder in {train_dir} "
            f"(its folders: {found[:10]}{' …' if len(found) > 10 else ''})"
        )
    return wanted


def _folders(settings: dict, root: Path) -> tuple[Path, list[str], Path]:
    """train/, its classes and the test folder (test/, else val/), each checked to be there."""
    require_root(root, layout(root), FIX)
    train_dir = root / "train"
    require_folder(train_dir, layout(root), FIX)
    classes = _classes(settings, train_dir, root)
    test_dir = next((root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    if test_dir is None:
        raise InputError(root / "test", "folder", f"not found (nor val/); {layout(root)}", FIX)
    return train_dir, classes, test_dir


def load(settings: dict) -> RawDataset:
    if settings.get("download"):
        raise ConfigError("datasets.<name>.download is not available for source ImageFolder")
    root = root_setting(settings, "ImageFolder", FIX)
    size = image_size(settings, None, "ImageFolder")
    train_dir, classes, test_dir = _folders(settings, root)
    test_classes = set(class_folders(test_dir))
    # a test class that has a train folder but is left out by `classes` is skipped
    unknown = sorted(test_classes - set(class_folders(train_dir)))
    if unknown:
        raise InputError(
            test_dir / unknown[0], "class folder", f"has no train folder; {layout(root)}", FIX
        )
    present = [c for c in classes if c in test_classes]
    if not present:
        raise InputError(test_dir, "folder", f"holds none of the classes; {layout(root)}", FIX)
    if len(present) != len(classes):
        log.warning("%s has %d of the %d classes", test_dir, len(present), len(classes))
    test = class_tree_split(root, test_dir, present, size, layout(root), FIX)
    test.labels = torch.tensor([classes.index(c) for c in present])[test.labels]
    return RawDataset(
        name="ImageFolder",
        classes=classes,
        max_value=255.0,
        train=class_tree_split(root, train_dir, classes, size, layout(root), FIX),
        test=test,
        notes={
            "folder": str(root),
            "test_folder": test_dir.name,
            "format": "ImageFolder tree",
            "image_size": size,
        },
    )


def check_layout(settings: dict) -> None:
    """At plan time: root, train/ with its class folders, and test/ (or val/)."""
    _folders(settings, root_setting(settings, "ImageFolder", FIX))


def register() -> None:
    register_source(
        "ImageFolder",
        load,
        files=True,
        options=("image_size", "classes"),
        requires=("root", "image_size"),
        check_layout=check_layout,
    )
