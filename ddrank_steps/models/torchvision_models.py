"""`torchvision:<name>`: any torchvision classification model, untrained, and the shared
helpers of the torchvision-style AlexNet, VGG and ResNet.

`torchvision:resnet18` is `torchvision.models.get_model("resnet18", num_classes=..., weights=None)`:
never pretrained weights, so nothing is downloaded. (The reference falls back to timm for
unknown names and then always raises; here an unknown name is a config error with the
closest valid names.) Input size is the model's business; the reference ignores it too.

Inputs with other than 3 channels: the first 3-channel conv is rebuilt with that many input
channels and otherwise the same settings (fresh init), so state-dict keys stay torchvision's.

Every torchvision-built model is first built on the meta device and run on an empty input
of the real size: a size the model cannot take (ViT at 32 px, AlexNet at 8 px) is then a
clear config error rather than a crash in the first training step. Meta tensors draw no
random numbers, so this leaves the seeded initialisation untouched.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn

from ddrank_steps.errors import ConfigError

FAMILY_NAME = "torchvision"
PREFIX = "torchvision:"
# Models whose defaults return auxiliary outputs in training (the engine wants plain logits)
# or warn about a future change of their initialisation.
_EXTRA_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


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
    label: str, make: Maker, channels: int, num_classes: int, im_size: tuple[int, int]
) -> nn.Module:
    """`make(channels, num_classes, im_size)`, after a shape-only trial run at that size."""
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
    return make(channels, num_classes, im_size)


def _make(arch: str) -> Maker:
    def make(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        import torchvision

        kwargs = _EXTRA_KWARGS.get(arch, {})
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
        if channels != 3:
            replace_first_conv(model, channels, f"{PREFIX}{arch}")
        return model

    return make


def build(spec, channels, num_classes, im_size) -> nn.Module:
    return build_checked(f"{PREFIX}{spec.arch}", _make(spec.arch), channels, num_classes, im_size)


def _family():
    from ddrank_steps.models import Family

    return Family(
        builder=build,
        depths=None,
        default_norm=None,
        norms=(),
        options=(),
        has_depth=False,
    )


FAMILY = _family()
