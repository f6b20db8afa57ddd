"""Lossless PNG folders of a set's raw pixels: `<folder>/<class:05d>/<j:05d>.png`.

The reference writes its random subsets as JPEGs (quality 75, lossy) of de-normalised
floats; a PNG of the stored uint8 pixels is exact, so a tool that reads the folder
(ImageFolder) trains on the very pixels we train on. The folder is written to a
temporary name and swapped in whole (`io.atomic_dir`), so a stale folder from an
earlier run (say, a larger ipc) is never mixed with the new one.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ddrank_steps.runtime.atomic_write import atomic_dir


def write_png_folder(pixels: torch.Tensor, labels: torch.Tensor, folder: str | os.PathLike) -> None:
    """Write uint8 (N, C, H, W) pixels (C = 1 or 3), numbered per class in set order."""
    from PIL import Image

    if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(
            f"PNG folders need uint8 (N, 1|3, H, W) pixels; got {pixels.dtype} "
            f"{tuple(pixels.shape)}"
        )
    arrays = pixels.permute(0, 2, 3, 1).contiguous().numpy()
    counts: dict[int, int] = {}
    with atomic_dir(folder) as tmp:
        for array, label in zip(arrays, labels.tolist(), strict=True):
            j = counts.get(label, 0)
            counts[label] = j + 1
            class_dir = tmp / f"{label:05d}"
            class_dir.mkdir(exist_ok=True)
            image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
            image.save(class_dir / f"{j:05d}.png", format="PNG")


def read_png_folder(folder: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 pixels and labels of a folder written by `write_png_folder` (for checks)."""
    from PIL import Image

    from ddrank_steps.data.image_files import class_folders

    images, labels = [], []
    for name in class_folders(folder):
        for path in sorted(
            os.path.join(folder, name, f) for f in os.listdir(os.path.join(folder, name))
        ):
            with Image.open(path) as image:
                array = np.asarray(image)
            array = array[:, :, None] if array.ndim == 2 else array
            images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
            labels.append(int(name))
    return torch.stack(images), torch.tensor(labels)
