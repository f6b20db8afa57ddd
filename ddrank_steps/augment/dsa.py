"""Differentiable Siamese Augmentation (DSA), as DD-Ranking applies it to training batches.

The ops are plain functions of the images and explicit per-sample parameters, so each can be
checked against its formula; `DSA` only draws those parameters and chains the ops.

Deviations from the reference, all deliberate:
- Every random draw comes from the caller's `torch.Generator` on the images' device (the
  reference uses the global RNG, part of it on the CPU), so one seed gives one batch.
- The unused "siamese" seed mode (all samples share sample 0's parameters) is not offered.
- crop and cutout size each axis from that axis (`int(W * r + 0.5)` for the width). For square
  images, the only ones the reference benchmarks, this is identical to its H-only wording.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddrank_steps.augment.params import resolve_spellings
from ddrank_steps.errors import ConfigError

# Mode "S" picks one of these per batch; mode "M" applies all of them in this order.
OP_NAMES: tuple[str, ...] = ("scale", "rotate", "flip", "color", "crop", "cutout")
MODES: tuple[str, ...] = ("S", "M")

# DC-style spelling -> reference spelling. brightness/saturation/contrast are spelled alike.
_ALIASES: dict[str, str] = {
    "ratio_scale": "scale",
    "ratio_rotate": "rotate",
    "prob_flip": "flip",
    "ratio_crop_pad": "crop",
    "ratio_cutout": "cutout",
    "aug_mode": "mode",
}

# name -> (lowest, highest) allowed value; None means unbounded.
_RANGES: dict[str, tuple[float, float | None]] = {
    "scale": (1.0, None),  # sx, sy ~ U(1/r, r) needs r >= 1
    "rotate": (0.0, 180.0),
    "flip": (0.0, 1.0),
    "brightness": (0.0, None),
    "saturation": (0.0, None),
    "contrast": (0.0, None),
    "crop": (0.0, 1.0),
    "cutout": (0.0, 1.0),
}


@dataclass(frozen=True)
class DSAParams:
    """Resolved DSA settings; the defaults are the DD-Ranking demo values."""

    scale: float = 1.2
    rotate: float = 15.0
    flip: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    crop: float = 0.125
    cutout: float = 0.5
    mode: str = "S"


def valid_param_keys() -> list[str]:
    return sorted([*_RANGES, "mode", *_ALIASES])


def parse_params(params: Mapping[str, object] | None) -> DSAParams:
    """Resolve either spelling into `DSAParams`, rejecting unknown keys and bad values."""
    if params is None:
        return DSAParams()
    canonical = (*_RANGES, "mode")
    resolved, given_as = resolve_spellings("DSA", params, _ALIASES, canonical, valid_param_keys())
    values = {
        name: _check_number(given_as[name], resolved[name]) for name in _RANGES if name in resolved
    }
    if "mode" in resolved:
        values["mode"] = _check_mode(given_as["mode"], resolved["mode"])
    return DSAParams(**values)


def _check_number(key: str, value: object) -> float:
    # bool is an int subclass, but `flip: true` is a config mistake, not probability 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"DSA param '{key}' must be a finite number, got {value!r}")
    low, high = _RANGES[_ALIASES.get(key, key)]
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"DSA param '{key}' must be {bound}, got {value!r}")
    return float(value)


def _check_mode(key: str, value: object) -> str:
    if value not in MODES:
        raise ConfigError(
            f"DSA param '{key}' must be 'S' (one op per batch) or 'M' (all ops), got {value!r}"
        )
    return str(value)


# ---------------------------------------------------------------------------------------------
# The ops. Per-sample parameters are 1-D tensors of length N on the images' device.


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape (N,) -> (N, 1, 1, 1) so it broadcasts over C, H, W."""
    return values.to(dtype=x.dtype).view(-1, 1, 1, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(dtype=x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def scale(x: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """Resample through the affine [[sx, 0, 0], [0, sy, 0]] (sx acts on width, sy on height)."""
    zeros = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zeros, zeros], 1), torch.stack([zeros, sy, zeros], 1)], 1)
    return _affine(x, theta)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Resample through the affine [[cos, -sin, 0], [sin, cos, 0]] of each sample's angle."""
    radians = degrees * (math.pi / 180.0)
    cos, sin, zeros = torch.cos(radians), torch.sin(radians), torch.zeros_like(radians)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    return _affine(x, theta)


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the width axis of the samples where `mask` (bool, (N,)) is true."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def brightness(x: torch.Tensor, u: torch.Tensor, r: float) -> torch.Tensor:
    return x + (_per_sample(u, x) - 0.5) * r


def saturation(x: torch.Tensor, u: torch.Tensor, r: float) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # grey value of each pixel
    return (x - mean) * (_per_sample(u, x) * r) + mean


def contrast(x: torch.Tensor, u: torch.Tensor, r: float) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(u, x) + r) + mean


def crop(x: torch.Tensor, shift_h: torch.Tensor, shift_w: torch.Tensor) -> torch.Tensor:
    """Translate by whole pixels: out[n, :, i, j] = x[n, :, i + shift_h[n], j + shift_w[n]],
    zero where that source pixel lies outside the image (the reference's pad-and-clamp)."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).unsqueeze(0) + shift_h.view(-1, 1)  # (N, H)
    cols = torch.arange(w, device=x.device).unsqueeze(0) + shift_w.view(-1, 1)  # (N, W)
    row_ok = (rows >= 0) & (rows < h)
    col_ok = (cols >= 0) & (cols < w)
    # Gather rows, then columns; clamped indices only read pixels the mask then zeroes.
    row_idx = rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w)
    col_idx = cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w)
    moved = x.gather(2, row_idx).gather(3, col_idx)
    inside = (row_ok.view(n, 1, h, 1) & col_ok.view(n, 1, 1, w)).expand(n, c, h, w)
    return torch.where(inside, moved, torch.zeros_like(moved))


def cutout(
    x: torch.Tensor,
    centre_h: torch.Tensor,
    centre_w: torch.Tensor,
    size_h: int,
    size_w: int,
) -> torch.Tensor:
    """Zero a size_h x size_w box per sample, spanning [centre - size // 2, centre - size // 2
    + size) on each axis and clipped at the image border."""
    _, _, h, w = x.shape
    top = (centre_h - size_h // 2).view(-1, 1)
    left = (centre_w - size_w // 2).view(-1, 1)
    rows = torch.arange(h, device=x.device).unsqueeze(0)
    cols = torch.arange(w, device=x.device).unsqueeze(0)
    in_rows = (rows >= top) & (rows < top + size_h)  # (N, H)
    in_cols = (cols >= left) & (cols < left + size_w)  # (N, W)
    box = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)  # (N, H, W)
    return x.masked_fill(box.unsqueeze(1), 0.0)


def axis_shift(size: int, ratio: float) -> int:
    """Pixels a crop may move along an axis of `size` pixels (4 at 32 px with ratio 0.125)."""
    return int(size * ratio + 0.5)


def cutout_size(size: int, ratio: float) -> int:
    """Side of the cutout box along an axis of `size` pixels (16 at 32 px with ratio 0.5)."""
    return int(size * ratio + 0.5)


# ---------------------------------------------------------------------------------------------
# Random parameters and the batch augmentation.

RandomOp = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class DSA:
    """Batch augmentation: `dsa(images, generator) -> (augmented, None)`.

    Mode "S" applies one op, chosen uniformly per batch, with independent per-sample
    parameters; mode "M" applies all six in order. Draws use only `generator`.
    """

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params = parse_params(params)
        self.random_ops: dict[str, RandomOp] = {
            "scale": self._random_scale,
            "rotate": self._random_rotate,
            "flip": self._random_flip,
            "color": self._random_color,
            "crop": self._random_crop,
            "cutout": self._random_cutout,
        }

    def __repr__(self) -> str:
        return f"DSA({self.params})"

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, None]:
        _check_inputs(images, generator)
        ops = self.choose_ops(generator, images.device)
        return self.apply(images, ops, generator), None

    def choose_ops(self, generator: torch.Generator, device: torch.device) -> tuple[str, ...]:
        if self.params.mode == "M":
            return OP_NAMES
        # The one host sync per batch: Python must know which op to run.
        index = int(torch.randint(len(OP_NAMES), (1,), generator=generator, device=device))
        return (OP_NAMES[index],)

    def apply(
        self, images: torch.Tensor, ops: tuple[str, ...], generator: torch.Generator
    ) -> torch.Tensor:
        for name in ops:
            images = self.random_ops[name](images, generator)
        return images

    def _random_scale(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        r = self.params.scale
        sx = _uniform(x, g, 1.0 / r, r)
        sy = _uniform(x, g, 1.0 / r, r)
        return scale(x, sx, sy)

    def _random_rotate(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        r = self.params.rotate
        return rotate(x, _uniform(x, g, -r, r))

    def _random_flip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return flip(x, _uniform(x, g, 0.0, 1.0) < self.params.flip)

    def _random_color(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        p = self.params
        x = brightness(x, _uniform(x, g, 0.0, 1.0), p.brightness)
        x = saturation(x, _uniform(x, g, 0.0, 1.0), p.saturation)
        return contrast(x, _uniform(x, g, 0.0, 1.0), p.contrast)

    def _random_crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _, _, h, w = x.shape
        shift_h, shift_w = axis_shift(h, self.params.crop), axis_shift(w, self.params.crop)
        return crop(x, _randint(x, g, -shift_h, shift_h + 1), _randint(x, g, -shift_w, shift_w + 1))

    def _random_cutout(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _, _, h, w = x.shape
        size_h, size_w = cutout_size(h, self.params.cutout), cutout_size(w, self.params.cutout)
        # An even box has no middle pixel, so its centre may also sit one past the last pixel.
        centre_h = _randint(x, g, 0, h + (1 - size_h % 2))
        centre_w = _randint(x, g, 0, w + (1 - size_w % 2))
        return cutout(x, centre_h, centre_w, size_h, size_w)


def _uniform(x: torch.Tensor, g: torch.Generator, low: float, high: float) -> torch.Tensor:
    # float32 whatever the image dtype, so a seed draws the same parameters for every dtype.
    u = torch.rand(x.shape[0], generator=g, device=x.device, dtype=torch.float32)
    return u * (high - low) + low


def _randint(x: torch.Tensor, g: torch.Generator, low: int, high: int) -> torch.Tensor:
    return torch.randint(low, high, (x.shape[0],), generator=g, device=x.device)


def _check_inputs(images: torch.Tensor, generator: torch.Generator) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            "DSA expects float images of shape (N, C, H, W), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    if generator.device.type != images.device.type:
        raise ValueError(
            f"DSA needs a generator on the images' device ({images.device}), got one on "
            f"{generator.device}; create it with torch.Generator(device=images.device)"
        )
