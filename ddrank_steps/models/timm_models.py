"""`timm:<name>`: a model of timm (PyTorch Image Models), an optional extra.

The reference falls back to `timm.create_model` for names it does not know; here a timm
model is asked for by name, `timm:resnet18` or with a pretrained tag
`timm:resnet18.a1_in1k`, and is `timm.create_model(name, num_classes=…, in_chans=…)` for
the dataset's classes and channels. timm is optional (`pip install -e ".[timm]"`): without
it a `timm:` name is a ConfigError saying so, and nothing else needs it.

`model_options: {pretrained: true}` loads the name's tag (or timm's default tag) from the
local Hugging Face cache (or the torch hub cache for weights timm fetches by URL), never
downloading (models/pretrained.py); `pretrained: <tag>` picks another tag. The cache key
holds the tag, not `true`. timm itself adapts the weights: a classifier for another class
count is re-initialised (seeded), and the first conv is adapted to 1 or more channels.

Like torchvision models, the model is first tried on the meta device at the real input
size, so a size it cannot take is a config error, not a crash in training.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import pretrained as cache
from ddrank_steps.models.torchvision_models import build_checked

FAMILY_NAME = "timm"
PREFIX = "timm:"
OPTIONS = ("pretrained",)
INSTALL = 'pip install -e ".[timm]"'
# hub files timm reads for a repo, in its order of preference
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"timm:<name> models need timm, an optional extra: {INSTALL} "
            "(or pip install 'timm>=1.0')"
        ) from None
    return timm


def _split(arch: str) -> tuple[str, str]:
    """`resnet18.a1_in1k` -> (`resnet18`, `a1_in1k`); no tag -> (`resnet18`, ``)."""
    base, _, tag = arch.partition(".")
    return base, tag


def _tags(base: str) -> list[str]:
    from timm.models import get_arch_pretrained_cfgs

    return [_split(full)[1] for full in get_arch_pretrained_cfgs(base)]


def parse(name: str):
    from ddrank_steps.models import ModelSpec

    timm = _timm()
    base, tag = _split(name[len(PREFIX) :])
    if not base or not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
        hint = f"closest: {close}" if close else "see timm.list_models()"
        raise ConfigError(f"unknown model '{name}': '{base}' is not a timm model ({hint})")
    if tag and tag not in _tags(base):
        raise ConfigError(
            f"unknown model '{name}': '{tag}' is not a pretrained tag of {base}; "
            f"tags: {_tags(base)}"
        )
    return ModelSpec(FAMILY_NAME, None, None, name[len(PREFIX) :])


def resolve_tag(name: str, arch: str, value: object) -> str | None:
    """The pretrained tag that `pretrained: value` names for `arch`; None for false."""
    if value is False or value is None:
        return None
    base, name_tag = _split(arch)
    tags = _tags(base)
    if not tags:
        raise ConfigError(f"model_options.pretrained: {name} has no pretrained weights in timm")
    if value is True:
        from timm.models import get_pretrained_cfg

        return name_tag or get_pretrained_cfg(base).tag  # timm's default tag
    if not isinstance(value, str) or value not in tags:
        raise ConfigError(
            f"model_options.pretrained of {name} must be true, false or one of its tags "
            f"{tags}; got {value!r}"
        )
    if name_tag and value != name_tag:
        raise ConfigError(
            f"model_options.pretrained of {name}: the name already has tag '{name_tag}'; "
            f"write pretrained: true, or name timm:{base}.{value}"
        )
    return value


def weights_file(name: str, base: str, tag: str) -> tuple[Path, bool]:
    """The cached weights file of `base.tag` and whether it came from the hub (timm then
    reads it as a plain state dict), or a ConfigError naming where it should be."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{base}.{tag}")
    fill = f"python -c \"import timm; timm.create_model('{base}.{tag}', pretrained=True)\""
    what = f"timm's {base}.{tag} weights"
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_FILES
        found = cache.hf_cached_file(cfg.hf_hub_id, files)
        if found is not None:
            return found, True
        expected = cache.hf_expected_path(cfg.hf_hub_id, files[0])
        raise cache.missing_weights(f"model_options.pretrained of {name}", what, expected, fill)
    if cfg.url:
        path = cache.torch_hub_checkpoint(cfg.url)
        if path.is_file():
            return path, False
        raise cache.missing_weights(f"model_options.pretrained of {name}", what, path, fill)
    raise ConfigError(f"model_options.pretrained of {name}: timm has no file for {base}.{tag}")


def check_options(name: str, spec, options: dict) -> None:
    tag = resolve_tag(name, spec.arch, options.get("pretrained", False))
    if tag is not None:
        weights_file(name, _split(spec.arch)[0], tag)


def spell_options(spec, options: dict) -> dict:
    """`pretrained` as the tag (`a1_in1k`) or false."""
    tag = resolve_tag(spec.arch, spec.arch, options["pretrained"])
    return {**options, "pretrained": False if tag is None else tag}


def weights_classes(spec, options: dict) -> int | None:
    from timm.models import get_pretrained_cfg

    tag = resolve_tag(spec.arch, spec.arch, options.get("pretrained", False))
    if tag is None:
        return None
    return get_pretrained_cfg(f"{_split(spec.arch)[0]}.{tag}").num_classes


def build(spec, channels, num_classes, im_size, pretrained=False) -> nn.Module:
    timm = _timm()
    name = f"{PREFIX}{spec.arch}"
    base = _split(spec.arch)[0]
    tag = resolve_tag(name, spec.arch, pretrained)

    def make(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        return timm.create_model(base, pretrained=False, num_classes=num_classes, in_chans=channels)

    if tag is None:
        return build_checked(name, make, channels, num_classes, im_size)
    path, from_hub = weights_file(name, base, tag)
    # a file overlay makes timm read this file and nothing else; hub files are plain state
    # dicts, so the URL loader some tags declare (`custom_load`, ViT's .npz) is switched off
    overlay = {"file": str(path), **({"custom_load": False} if from_hub else {})}

    def make_pretrained(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        return timm.create_model(
            f"{base}.{tag}",
            pretrained=True,
            pretrained_cfg_overlay=overlay,
            num_classes=num_classes,
            in_chans=channels,
        )

    return build_checked(name, make, channels, num_classes, im_size, make_real=make_pretrained)


def _family():
    from ddrank_steps.models import library_family

    return library_family(build, OPTIONS, check_options, spell_options, weights_classes)


FAMILY = _family()
