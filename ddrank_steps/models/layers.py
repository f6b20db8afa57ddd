"""Pieces shared by the model families: norm layers, feature-map arithmetic, option checks.

Feature-map sizes are computed by arithmetic rather than by a trial forward pass, so a model
whose map would vanish is refused with a message naming the sizes, before any weights exist.
"""

from __future__ import annotations

from torch import nn

from ddrank_steps.errors import ConfigError


def norm2d(norm: str, channels: int, height: int, width: int) -> nn.Module | None:
    """The norm layer of the DC networks; None for no norm (so layer indices, and with them
    the state-dict keys of reference checkpoints, match the reference, which skips it)."""
    if norm == "instancenorm":  # instance norm with affine weights, as GroupNorm(C, C)
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([channels, height, width], elementwise_affine=True)
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}")  # unreachable: names are parsed first


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def stem_stride(im_size: tuple[int, int]) -> int:
    """Stride of the first layer of the DC AlexNet, LeNet and ResNet.

    The reference strides by 1 at 32 px and by 2 otherwise, but its heads only fit 32 and
    64 px. We stride by 2 from 64 px up and by 1 below, which is the reference at 32 and 64
    and lets small inputs (8-px digits, 28-px MNIST) keep enough map to pool."""
    return 2 if min(im_size) >= 64 else 1


def check_map(model: str, size: tuple[int, int], im_size: tuple[int, int], where: str) -> None:
    """Refuse a feature map that has vanished (or is about to be pooled to nothing)."""
    if min(size) < 1:
        raise ConfigError(
            f"{model} cannot take {im_size[0]}x{im_size[1]} inputs: its feature map "
            f"vanishes {where}. Use larger images (e.g. a Resize transform) or another model."
        )


def check_bool(model: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"model_options.{key} of {model} must be true or false, got {value!r}")
    return value


def check_positive_int(model: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"model_options.{key} of {model} must be a positive integer, got {value!r}"
        )
    return value


def check_choice(model: str, key: str, value: object, choices: dict | tuple) -> str:
    if value not in choices:
        raise ConfigError(f"model_options.{key} '{value}' of {model} is not one of {list(choices)}")
    return str(value)
