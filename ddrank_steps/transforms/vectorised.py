"""How a built transform list runs on a batch of images, one stage per item or run of items.

A per-image transform written for a DataLoader costs a Python call (and a few kernel
launches) per image and item: about 0.2 ms for the reference's CIFAR list on a CPU,
which on a GPU is far longer than the training step of a tiny set. So each item runs
the cheapest exact way:

- items with no randomness that act on each image alone (Normalize, Pad, CenterCrop,
  Resize, Grayscale, dtype conversions) run once on the whole batch: torchvision v2
  treats leading dimensions as a batch, so this equals the per-image result;
- RandomHorizontalFlip / RandomVerticalFlip and RandomCrop (the reference's CIFAR list)
  run vectorised with their own draws per image: a flip decision, a crop offset
  uniform over the padded image, as torchvision draws them (not the same numbers in
  the same order, so a seed gives other, equally distributed crops);
- anything else runs image by image, with torchvision's own per-image draws.
"""

from __future__ import annotations

import torch

# Deterministic items that act on each image independently (see the module doc).
WHOLE_BATCH = frozenset(
    {"Normalize", "Pad", "CenterCrop", "Resize", "Grayscale", "ToDtype", "ConvertImageDtype"}
)


class WholeBatch:
    def __init__(self, transform):
        self.transform = transform

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.transform(images)


class PerImage:
    def __init__(self, transforms: list):
        from torchvision.transforms import v2

        self.transform = v2.Compose(transforms)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])


class BatchFlip:
    """Each image flipped along `dim` with probability p."""

    def __init__(self, p: float, dim: int):
        self.p, self.dim = p, dim

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        flip = (torch.rand(len(images)) < self.p).to(images.device).view(-1, 1, 1, 1)
        return torch.where(flip, images.flip(self.dim), images)


class BatchRandomCrop:
    """torchvision's RandomCrop with one offset per image: pad the batch once, then
    gather each image's window."""

    def __init__(self, crop):
        self.crop = crop
        # torchvision keeps (left, right, top, bottom); F.pad takes (left, top, right, bottom)
        left, right, top, bottom = crop.padding if crop.padding is not None else [0] * 4
        self.padding = [left, top, right, bottom]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        padded = images
        if any(self.padding):
            padded = F.pad(
                images, self.padding, fill=self.crop.fill, padding_mode=self.crop.padding_mode
            )
        height, width = self.crop.size
        spare_h, spare_w = padded.shape[-2] - height, padded.shape[-1] - width
        if spare_h < 0 or spare_w < 0:
            raise ValueError(
                f"crop size {(height, width)} is larger than the (padded) image "
                f"{tuple(padded.shape[-2:])}"
            )
        n = len(images)
        top = torch.randint(0, spare_h + 1, (n,)).to(images.device)
        left = torch.randint(0, spare_w + 1, (n,)).to(images.device)
        rows = top[:, None] + torch.arange(height, device=images.device)  # (N, h)
        cols = left[:, None] + torch.arange(width, device=images.device)  # (N, w)
        batch = torch.arange(n, device=images.device)[:, None, None]
        windows = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return windows.permute(0, 3, 1, 2).contiguous()


def batched(transform):
    """The vectorised stage of one built item, or None when it must run per image."""
    from torchvision.transforms import v2

    name = type(transform).__name__
    if name in WHOLE_BATCH and type(transform).__module__.startswith("torchvision.transforms.v2"):
        return WholeBatch(transform)
    if isinstance(transform, v2.RandomHorizontalFlip):
        return BatchFlip(transform.p, -1)
    if isinstance(transform, v2.RandomVerticalFlip):
        return BatchFlip(transform.p, -2)
    if (
        isinstance(transform, v2.RandomCrop)
        and not transform.pad_if_needed
        and isinstance(transform.fill, int | float)
    ):
        return BatchRandomCrop(transform)
    return None


def stages(transforms: list) -> list:
    """The list as stages: vectorised items alone, runs of the others per image."""
    out, run = [], []
    for t in transforms:
        stage = batched(t)
        if stage is None:
            run.append(t)
            continue
        if run:
            out.append(PerImage(run))
            run = []
        out.append(stage)
    if run:
        out.append(PerImage(run))
    return out
