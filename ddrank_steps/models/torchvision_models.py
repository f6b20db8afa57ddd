"""`torchvision:<name>` (or the bare `<name>`): any torchvision classification model, and
the shared helpers of the torchvision-style AlexNet, VGG and ResNet.

`torchvision:resnet18` is `torchvision.models.get_model("resnet18", num_classes=..., weights=None)`,
freshly initialised. (The reference falls back to timm for unknown names and then always
raises; here an unknown name is a config error with the closest valid names.) Input size
is the model's business; the reference ignores it too.

`model_options: {pretrained: true}` (torchvision's DEFAULT weights) or `{pretrained:
IMAGENET1K_V2}` (one of the model's weights) then loads those weights from the local torch
hub cache, never downloading (models/pretrained.py says where and why). The cache key holds
the weights' name, not `true`: torchvision's DEFAULT may move to newer weights. With a class
count other than the weights' (1000 for ImageNet), the classifier keeps its fresh seeded
init and every other layer is loaded: a backbone to fine-tune. Pretrained weights take
3-channel images only.

Inputs with other than 3 channels: the first 3-channel conv is rebuilt with that many input
channels and otherwise the same settings (fresh init), so state-dict keys stay torchvision's.

Every torchvision-built model is first built on the meta device and run on an empty input
of the real size: a size the model cannot take (ViT at 32 px, AlexNet at 8 px) is then a
clear config error rather than a crash in the first training step. Meta tensors draw no
random numbers, so this leaves the seeded initialisation untouched.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import pretrained as cache

FAMILY_NAME = "torchvision"
PREFIX = "torchvision:"
# Models whose defaults return auxiliary outputs in training (the engine wants plain logits)
# or warn about a future change of their initialisation.
_EXTRA_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
# What torchvision's builders set when they load weights and our fresh model must share to
# compute what the weights were trained for (inputs re-normalised inside the model).
_PRETRAINED_KWARGS = {
    "googlenet": {"transform_input": True},
    "inception_v3": {"transform_input": True},
}
OPTIONS = ("pretrained",)


def classification_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def parse(name: str):
    from ddrank_steps.models import ModelSpec

    arch = name[len(PREFIX) :]
    valid = classification_models()
    if arch not in valid:
        close = difflib.get_close_matches(arch, valid, n=5, cutoff=0.5)
        hint = f"closest: {close}" if close else f"valid: {valid}"
        raise ConfigError(
            f"unknown model '{name}': '{arch}' is not a torchvision classification model ({hint})"
        )
    return ModelSpec(FAMILY_NAME, None, None, arch)


def replace_first_conv(model: nn.Module, channels: int, label: str) -> nn.Module:
    """Rebuild the first 3-channel Conv2d of `model` for `channels` input channels."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                conv = nn.Conv2d(
                    channels,
                    child.out_channels,
                    kernel_size=child.kernel_size,
                    stride=child.stride,
                    padding=child.padding,
                    dilation=child.dilation,
                    groups=1,
                    bias=child.bias is not None,
                    padding_mode=child.padding_mode,
                )
                setattr(parent, child_name, conv)
                return model
    raise ConfigError(f"{label} has no 3-channel first conv to adapt to {channels} channels")


Maker = Callable[[int, int, tuple[int, int]], nn.Module]


def build_checked(
    label: str,
    make: Maker,
    channels: int,
    num_classes: int,
    im_size: tuple[int, int],
    make_real: Maker | None = None,
) -> nn.Module:
    """`make(channels, num_classes, im_size)`, after a shape-only trial run at that size;
    `make_real` (same architecture, e.g. with pretrained weights), if given, builds the
    returned model instead (weights cannot be loaded on the meta device)."""
    try:
        with torch.device("meta"):
            probe = make(channels, num_classes, im_size)
    except ConfigError:
        raise
    except Exception:  # a model that cannot be built on meta: skip the trial, build for real
        probe = None
    if probe is not None:
        probe.eval()  # batch norm refuses a batch of 1 in training mode
        try:
            with torch.no_grad():
                out = probe(torch.empty(1, channels, *im_size, device="meta"))
        except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
            raise ConfigError(
                f"{label} cannot take {channels}x{im_size[0]}x{im_size[1]} inputs: {exc}"
            ) from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
            raise ConfigError(f"{label} does not return ({num_classes},) logits per image")
    return (make_real or make)(channels, num_classes, im_size)


def _make(arch: str, pretrained: bool = False) -> Maker:
    def make(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        import torchvision

        kwargs = {**_EXTRA_KWARGS.get(arch, {})}
        if pretrained:
            kwargs.update(_PRETRAINED_KWARGS.get(arch, {}))
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
        if channels != 3:
            replace_first_conv(model, channels, f"{PREFIX}{arch}")
        return model

    return make


def resolve_weights(name: str, arch: str, value: object):
    """The torchvision weights (an enum member) that `pretrained: value` names for `arch`;
    None for false. `true` is torchvision's DEFAULT."""
    if value is False or value is None:
        return None
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ConfigError(f"model_options.pretrained: {name} has no pretrained weights") from None
    names = [w.name for w in weights]
    if value is True:
        value = "DEFAULT"
    if not isinstance(value, str) or (value not in names and value != "DEFAULT"):
        raise ConfigError(
            f"model_options.pretrained of {name} must be true (torchvision's DEFAULT "
            f"weights), false, or one of its weights {names}; got {value!r}"
        )
    return weights[value]


def weights_file(name: str, weights) -> Path:
    """The cached file of `weights`, or a ConfigError naming where it should be."""
    path = cache.torch_hub_checkpoint(weights.url)
    if not path.is_file():
        fill = (
            f'python -c "import torchvision; torchvision.models.get_weight('
            f"'{type(weights).__name__}.{weights.name}').get_state_dict()\""
        )
        raise cache.missing_weights(
            f"model_options.pretrained of {name}",
            f"torchvision's {type(weights).__name__}.{weights.name} weights ({weights.url})",
            path,
            fill,
        )
    return path


def check_options(name: str, spec, options: dict) -> None:
    weights = resolve_weights(name, spec.arch, options.get("pretrained", False))
    if weights is not None:
        weights_file(name, weights)


def spell_options(spec, options: dict) -> dict:
    """`pretrained` as the weights' name (`IMAGENET1K_V1`) or false."""
    weights = resolve_weights(spec.arch, spec.arch, options["pretrained"])
    return {**options, "pretrained": False if weights is None else weights.name}


def weights_classes(spec, options: dict) -> int | None:
    weights = resolve_weights(spec.arch, spec.arch, options.get("pretrained", False))
    return None if weights is None else len(weights.meta["categories"])


def load_weights(model: nn.Module, name: str, arch: str, weights, channels: int) -> nn.Module:
    """Load `weights` into `model` (built for its own class count and `channels`): every
    tensor, except a classifier whose class count differs from the weights' (it keeps its
    init). torchvision's own builder reads the cached file, so its key fixes (DenseNet's old
    names) apply; the RNG is forked so the model's seeded init stays as without weights."""
    import torchvision

    weights_file(name, weights)  # checked before torchvision could start a download
    if channels != 3:
        raise ConfigError(
            f"model_options.pretrained of {name}: torchvision's weights take 3-channel images "
            f"and this dataset has {channels}; drop `pretrained` or use a 3-channel dataset"
        )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torchvision.models.get_model(arch, weights=weights).state_dict()
    categories = len(weights.meta.get("categories") or [])
    own = model.state_dict()
    unknown = sorted(set(loaded) - set(own))
    fresh, bad = [], []
    for key, tensor in loaded.items():
        if key in own and own[key].shape != tensor.shape:
            head = tensor.shape[0] == categories and own[key].shape[1:] == tensor.shape[1:]
            (fresh if head else bad).append(key)
    if unknown or bad:
        raise ConfigError(
            f"model_options.pretrained of {name}: {weights} do not fit the model "
            f"(unknown keys {unknown[:5]}, other shapes {bad[:5]})"
        )
    missing, _ = model.load_state_dict(
        {k: v for k, v in loaded.items() if k not in fresh}, strict=False
    )
    lacking = sorted(set(missing) - set(fresh))
    if lacking:
        raise ConfigError(f"model_options.pretrained of {name}: {weights} lack {lacking[:5]}")
    return model


def build(spec, channels, num_classes, im_size, pretrained=False) -> nn.Module:
    name = f"{PREFIX}{spec.arch}"
    weights = resolve_weights(name, spec.arch, pretrained)
    make = _make(spec.arch, pretrained=weights is not None)
    model = build_checked(name, make, channels, num_classes, im_size)
    if weights is not None:
        load_weights(model, name, spec.arch, weights, channels)
    return model


def _family():
    from ddrank_steps.models import library_family

    return library_family(build, OPTIONS, check_options, spell_options, weights_classes)


FAMILY = _family()
