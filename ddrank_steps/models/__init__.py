"""Model registry: strict name parsing and one builder per family.

Names follow the reference: `Family-Depth[-Norm]`, e.g. `ConvNet-3`, `ConvNet-3-BN`.
Unlike the reference, an unknown family, depth or norm suffix is an error listing
the valid choices (the reference silently falls back to instance norm).
A later issue extends FAMILIES with AlexNet, VGG, ResNet, LeNet, MLP and torchvision models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ddrank_steps.errors import ConfigError

# suffix -> norm name used by the builders; no suffix means the family default
NORM_SUFFIXES = {
    "BN": "batchnorm",
    "IN": "instancenorm",
    "GN": "groupnorm",
    "LN": "layernorm",
    "NN": "none",
}


@dataclass(frozen=True)
class ModelSpec:
    family: str
    depth: int
    norm: str  # one of NORM_SUFFIXES' values


@dataclass(frozen=True)
class Family:
    builder: Callable  # (spec, channels, num_classes, im_size, **options) -> nn.Module
    depths: tuple[int, ...] | None  # None: any positive depth
    default_norm: str
    norms: tuple[str, ...]
    options: tuple[str, ...]  # model_options keys this family accepts


FAMILIES: dict[str, Family] = {}


def register_family(name: str, family: Family) -> None:
    FAMILIES[name] = family


def parse_model_name(name: str) -> ModelSpec:
    """Parse `Family-Depth[-Norm]` strictly; every mistake names the valid choices."""
    parts = str(name).split("-")
    family_name = parts[0]
    if family_name not in FAMILIES:
        raise ConfigError(
            f"unknown model '{name}': family '{family_name}' is not one of "
            f"{sorted(FAMILIES)} (names look like ConvNet-3 or ConvNet-3-BN)"
        )
    family = FAMILIES[family_name]
    if len(parts) < 2 or len(parts) > 3:
        raise ConfigError(
            f"unknown model '{name}': expected '{family_name}-<depth>[-<norm>]', "
            f"norm one of {sorted(NORM_SUFFIXES)}"
        )
    try:
        depth = int(parts[1])
    except ValueError:
        raise ConfigError(f"unknown model '{name}': depth '{parts[1]}' is not an integer") from None
    if depth < 1 or (family.depths is not None and depth not in family.depths):
        valid = "any positive integer" if family.depths is None else list(family.depths)
        raise ConfigError(f"unknown model '{name}': depth {depth} not in {valid}")
    norm = family.default_norm
    if len(parts) == 3:
        suffix = parts[2]
        if suffix not in NORM_SUFFIXES or NORM_SUFFIXES[suffix] not in family.norms:
            valid = [s for s, n in NORM_SUFFIXES.items() if n in family.norms]
            raise ConfigError(
                f"unknown model '{name}': norm suffix '{suffix}' is not one of {valid}"
            )
        norm = NORM_SUFFIXES[suffix]
    return ModelSpec(family_name, depth, norm)


def check_model_options(name: str, options: dict | None) -> None:
    spec = parse_model_name(name)
    allowed = FAMILIES[spec.family].options
    for key in options or {}:
        if key not in allowed:
            raise ConfigError(
                f"model_options.{key} is not an option of {spec.family}; valid: {list(allowed)}"
            )


def build_model(
    name: str,
    num_classes: int,
    channels: int,
    im_size: tuple[int, int],
    options: dict | None = None,
):
    """Build a freshly initialised model (init uses the global torch RNG: seed it first)."""
    spec = parse_model_name(name)
    check_model_options(name, options)
    family = FAMILIES[spec.family]
    return family.builder(spec, channels, num_classes, tuple(im_size), **(options or {}))


def available_models() -> list[str]:
    return sorted(FAMILIES)


def _register_builtin() -> None:
    # Imported lazily by name so the registry module itself needs no torch at import time.
    from ddrank_steps.models import convnet

    register_family(
        "ConvNet",
        Family(
            builder=convnet.build,
            depths=None,
            default_norm="instancenorm",
            norms=("instancenorm", "batchnorm", "groupnorm", "layernorm", "none"),
            options=convnet.OPTIONS,
        ),
    )


_register_builtin()
