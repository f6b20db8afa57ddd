"""Class-folder trees of image files as `FileSplit`s (TinyImageNet, ImageNet, ImageFolder)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddrank_steps.data.datasets import FileSplit
from ddrank_steps.data.datasets.layout_checks import require_folder
from ddrank_steps.data.image_files import IMG_EXTENSIONS, list_images
from ddrank_steps.errors import ConfigError, InputError


def find_root(root: Path, marker: str, nested: tuple[str, ...]) -> Path:
    """`root` itself when it holds `marker`, else the first `root/<nested>` that does.

    Archives unpack into a folder of their own (tiny-imagenet-200/, imagenette2/), so a
    user may point `root` at either level; when neither has it, `root` is returned and the
    first missing path names the layout we expected.
    """
    if (root / marker).exists():
        return root
    for name in nested:
        if (root / name / marker).exists():
            return root / name
    return root


def class_tree_split(
    root: Path, split_dir: Path, classes: list[str], size: int, layout: str, fix: str
) -> FileSplit:
    """A FileSplit of `split_dir/<class>/…` with label i for `classes[i]`."""
    require_folder(split_dir, layout, fix)
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = split_dir / name
        require_folder(folder, layout, fix, field="class folder")
        files = list_images(folder)
        if not files:
            raise InputError(
                folder,
                "class folder",
                f"holds no images ({', '.join(IMG_EXTENSIONS)}); {layout}",
                fix,
            )
        paths += [str(p.relative_to(root)) for p in files]
        labels += [label] * len(files)
    return FileSplit(
        root=str(root.resolve()),
        paths=paths,
        labels=torch.tensor(labels, dtype=torch.int64),
        size=size,
    )


def image_size(settings: dict, default: int | None, source: str) -> int:
    size = settings.get("image_size")
    size = default if size is None else size
    if size is None:
        raise ConfigError(f"datasets.<name>.image_size is required for source {source}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"datasets.<name>.image_size must be a positive integer; got {size!r}")
    return size
