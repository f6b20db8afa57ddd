"""TinyImageNet (200 classes, 64 x 64) from the layout of the official zip.

    {root}/wnids.txt                          one wnid per line
    {root}/train/<wnid>/images/*.JPEG         (and <wnid>_boxes.txt, ignored)
    {root}/val/images/*.JPEG
    {root}/val/val_annotations.txt            file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1

`root` may also be the folder that holds tiny-imagenet-200/. A val split already
sorted into `val/<wnid>/…` folders (what the reference's ImageFolder needs) is read
too. The official test split has no labels, so, as in the reference, val is the test
split.

Class ids are the sorted wnids: the reference builds ImageFolder(root/train), whose
classes are the sorted folder names (wnids.txt itself is not sorted).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ddrank_steps.data.datasets import FileSplit, RawDataset, register_source
from ddrank_steps.data.datasets.layout_checks import (
    plan_root,
    require_file,
    require_folder,
    require_root,
    root_fix,
    root_setting,
)
from ddrank_steps.data.datasets.trees import class_tree_split, find_root, image_size
from ddrank_steps.data.image_files import class_folders, is_image
from ddrank_steps.errors import InputError

log = logging.getLogger("ddrank.datasets.tinyimagenet")

DEFAULT_SIZE = 64
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"
FIX = root_fix("TinyImageNet", "the unpacked tiny-imagenet-200 folder")


def layout(root) -> str:
    return (
        f"expected {root}/wnids.txt, {root}/train/<wnid>/images/*.JPEG, "
        f"{root}/val/images/*.JPEG and {root}/val/val_annotations.txt "
        "(the tiny-imagenet-200 zip's layout; val may instead be sorted into val/<wnid>/)"
    )


def read_wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    require_file(path, layout(root), FIX)
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wnids:
        raise InputError(path, "wnids", f"is empty; {layout(root)}", "download the dataset again")
    if len(set(wnids)) != len(wnids):
        raise InputError(path, "wnids", "lists a wnid twice", "download the dataset again")
    return wnids


def read_val_annotations(root: Path, classes: list[str], size: int) -> FileSplit:
    """The val split from val_annotations.txt, ordered as ImageFolder orders a val tree
    sorted by wnid: by class, then by file name."""
    path = root / "val" / "val_annotations.txt"
    index = {wnid: i for i, wnid in enumerate(classes)}
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise InputError(
                path,
                f"line {number}",
                f"'{line}' is not file<TAB>wnid<TAB>box; {layout(root)}",
                "download the dataset again",
            )
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise InputError(
                path, f"line {number}", f"wnid {wnid} is not in wnids.txt", "download again"
            )
        image = root / "val" / "images" / name
        if not image.is_file():
            raise InputError(
                image,
                "file",
                f"listed on line {number} of val_annotations.txt but not found; {layout(root)}",
                "download the dataset again",
            )
        rows.append((index[wnid], name))
    if not rows:
        raise InputError(path, "file", f"lists no images; {layout(root)}", "download again")
    rows.sort()
    return FileSplit(
        root=str(root.resolve()),
        paths=[f"val/images/{name}" for _, name in rows],
        labels=torch.tensor([label for label, _ in rows], dtype=torch.int64),
        size=size,
    )


def read_val(root: Path, classes: list[str], size: int) -> FileSplit:
    val = root / "val"
    if (val / "val_annotations.txt").is_file():
        return read_val_annotations(root, classes, size)
    if val.is_dir() and set(class_folders(val)) - {"images"}:
        folders = set(class_folders(val))
        unknown = sorted(folders - set(classes))
        if unknown:
            raise InputError(
                val / unknown[0], "class folder", "is not a wnid of wnids.txt", layout(root)
            )
        present = [c for c in classes if c in folders]
        if len(present) != len(classes):
            log.warning("val/ has %d of the %d classes", len(present), len(classes))
        split = class_tree_split(root, val, present, size, layout(root), FIX)
        remap = torch.tensor([classes.index(c) for c in present])
        split.labels = remap[split.labels]
        return split
    images = val / "images"
    if images.is_dir() and any(is_image(p.name) for p in images.iterdir()):
        raise InputError(val / "val_annotations.txt", "file", f"not found; {layout(root)}", FIX)
    raise InputError(val, "folder", f"not found or empty; {layout(root)}", FIX)


def _download(root: Path) -> None:
    """Fetch and unpack the zip into `root`, unless wnids.txt is already there."""
    if find_root(root, "wnids.txt", (FOLDER,)).joinpath("wnids.txt").is_file():
        return
    from torchvision.datasets.utils import download_and_extract_archive

    log.info("downloading TinyImageNet to %s", root)
    download_and_extract_archive(URL, download_root=str(root))


def load(settings: dict) -> RawDataset:
    root = root_setting(settings, "TinyImageNet", FIX, default="data/tinyimagenet")
    size = image_size(settings, DEFAULT_SIZE, "TinyImageNet")
    if settings.get("download"):
        _download(root)
    require_root(root, layout(root), FIX)
    root = find_root(root, "wnids.txt", (FOLDER,))
    classes = sorted(read_wnids(root))
    train_dir = root / "train"
    require_folder(train_dir, layout(root), FIX)
    missing = sorted(set(classes) - set(class_folders(train_dir)))
    if missing:
        raise InputError(
            train_dir / missing[0],
            "class folder",
            f"not found ({len(missing)} wnids of wnids.txt have no train folder); {layout(root)}",
            FIX,
        )
    if len(classes) != 200:
        log.warning("wnids.txt lists %d classes; TinyImageNet has 200", len(classes))
    return RawDataset(
        name="TinyImageNet",
        classes=classes,
        max_value=255.0,
        train=class_tree_split(root, train_dir, classes, size, layout(root), FIX),
        test=read_val(root, classes, size),
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        notes={"folder": str(root), "format": "tiny-imagenet-200", "image_size": size},
    )


def check_layout(settings: dict) -> None:
    """At plan time: root, wnids.txt, train/ and val/ are there (unless download: true)."""
    root = plan_root(settings, "TinyImageNet", layout, FIX)
    if root is None:
        return
    root = find_root(root, "wnids.txt", (FOLDER,))
    read_wnids(root)
    for folder in ("train", "val"):
        require_folder(root / folder, layout(root), FIX)


def register() -> None:
    register_source(
        "TinyImageNet",
        load,
        files=True,
        options=("image_size",),
        size=DEFAULT_SIZE,
        check_layout=check_layout,
    )
