"""A picture of a set: its images back in pixel space, a row per class, beside a random
real subset of the same IPC, so a reader sees what a method's images look like next to
real ones.

Set files hold images in the training space: normalised with the dataset's mean/std, or
ZCA-whitened when the dataset has `zca`. They are shown de-whitened (the fit's inverse,
then de-normalised when the fit was on normalised images) and de-normalised, clipped to
[0, 1]; 1-channel images in grey.
"""

from __future__ import annotations

import numpy as np
import torch

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.data.zca import ZCA
from ddrank_steps.reporting.figure_output import plt

MAX_CLASSES = 10  # rows shown; a 100- or 1000-class set shows its first classes
MAX_PER_CLASS = 10  # columns shown


def to_pixels(images: torch.Tensor, meta: DatasetMeta, zca: ZCA | None) -> np.ndarray:
    """Training-space images (N, C, H, W) as displayable (N, H, W, C) values in [0, 1]."""
    x = images.detach().to(torch.float64)
    if zca is not None:
        # whitened = (x − mean) · T with T symmetric: x = T⁻¹ · whitened + mean
        flat = x.reshape(x.shape[0], -1)
        transform = zca.transform.to(torch.float64)
        flat = torch.linalg.solve(transform, flat.T).T + zca.mean.to(torch.float64)
        x = flat.view(x.shape)
        if meta.zca_input != "normalised":
            return _channels_last(x)
    mean = torch.tensor(meta.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float64).view(1, -1, 1, 1)
    return _channels_last(x * std + mean)


def _channels_last(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0.0, 1.0).permute(0, 2, 3, 1).numpy()


def mosaic(pixels: np.ndarray, labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """One image per (class row, column), at most MAX_PER_CLASS columns; blank where a
    class has fewer images. A 1-pixel gap separates the tiles."""
    h, w, c = pixels.shape[1:]
    rows, cols = len(classes), MAX_PER_CLASS
    out = np.ones(((h + 1) * rows, (w + 1) * cols, c))
    for i, k in enumerate(classes):
        for j, index in enumerate(np.flatnonzero(labels == k)[:cols]):
            out[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = pixels[index]
    return out


def gallery_figure(panels: dict[str, dict], meta: DatasetMeta, zca: ZCA | None, title: str):
    """`panels`: name -> set file contents (`images`, `labels`); side by side."""
    classes = list(range(min(meta.num_classes, MAX_CLASSES)))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.4 * len(panels), 0.34 * len(classes) + 1.2), squeeze=False
    )
    for ax, (name, blob) in zip(axes[0], panels.items(), strict=True):
        pixels = to_pixels(blob["images"], meta, zca)
        labels = blob["labels"].numpy()
        image = mosaic(pixels, labels, classes)
        if image.shape[2] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        h = pixels.shape[1] + 1
        ax.set_yticks(
            [i * h + h / 2 - 0.5 for i in classes], [_class_name(meta, k) for k in classes]
        )
        ax.set_xticks([])
        ax.grid(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
    note = ""
    if meta.num_classes > MAX_CLASSES:
        note = f" (first {MAX_CLASSES} of {meta.num_classes} classes)"
    if zca is not None:
        note += " (de-whitened)"
    fig.suptitle(title + note, x=0.01, ha="left", fontsize=9)
    fig.tight_layout()
    return fig


def _class_name(meta: DatasetMeta, k: int) -> str:
    name = str(meta.classes[k]) if k < len(meta.classes) else str(k)
    return name if len(name) <= 12 else name[:11] + "…"
