"""Image files: finding them in class-folder trees, and decoding them to pixel tensors.

A module of its own (not part of `datasets`) because training imports it to stream
files, and a stage reruns when any module it imports changes; the format readers in
`datasets/` are not its business.

Folder scanning follows torchvision's ImageFolder, so class ids and sample order are
the ones a reader of the reference expects: classes are the sorted subfolder names,
files are found recursively (following links) in sorted order, and only the
extensions torchvision accepts count as images.

Every file of a dataset goes through `decode`, whether it is cached at prepare time or
streamed during training, so the two storages give identical pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.errors import InputError

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

RESIZE_RULE = "shorter side resized to S (bilinear, antialiased), then centre crop S x S"


def is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the subfolders (torchvision's `find_classes`)."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, in torchvision's order."""
    found = []
    for root, _, names in sorted(os.walk(folder, followlinks=True)):
        found.extend(Path(root) / name for name in sorted(names) if is_image(name))
    return found


def resize_and_crop(image, size: int):
    """torchvision's Resize(size) then CenterCrop(size) on a PIL image, with PIL alone
    (the same arithmetic; torchvision is slow to import in every decoding process)."""
    from PIL import Image

    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)  # PIL's bilinear antialiases
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def decode(path: str | os.PathLike, size: int) -> torch.Tensor:
    """uint8 (3, size, size) RGB pixels of one image file.

    The reference resizes ImageNet images with Resize((S, S)), which squashes the aspect
    ratio. We resize the shorter side to S and centre-crop S x S instead (torchvision's
    usual test transform): objects keep their shape, and as every split and every set
    is decoded once by this one rule, each score sees a single test transform. Images
    that already are S x S (TinyImageNet at 64) are kept pixel for pixel.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except FileNotFoundError:
        raise InputError(
            path,
            "image",
            "file not found",
            "the dataset changed after it was prepared; delete its results/datasets/ "
            "folder so prepare_dataset indexes it again",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(
            path, "image", f"cannot be decoded as an image ({exc})", "replace or remove the file"
        ) from None
    if image.size != (size, size):
        image = resize_and_crop(image, size)
    pixels = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()
