"""VGG-11/13/16/19, in the DC style (default) or the torchvision style (`torchvision: true`).

DC style, as the reference's networks.py: the standard configurations, each conv3x3 (pad 1,
with bias) followed by the norm (-IN default: GroupNorm(C, C); -BN; -NN none) and ReLU,
'M' = max-pool 2; then Linear(512, classes). After the five pools the map is 1x1 at 32 px;
at 64 px it is 2x2 and the reference keeps its top-left value (AvgPool2d(kernel 1, stride 2)),
which we keep there so 64-px scores stay comparable. At other sizes, where the reference's
head does not fit, the map is averaged to 1x1. Inputs need at least 32 px (five pools).

torchvision style: torchvision's vgg{D} (-NN) or vgg{D}_bn (-BN), unchanged at every size
as in the reference (its adaptive pool fits anything that survives five pools). torchvision
has no instance-norm VGG, so `VGG-11` / `VGG-11-IN` with `torchvision: true` is an error
(the reference silently builds the norm-free vgg11 for `VGG-11`).
"""

from __future__ import annotations

from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models.layers import check_bool, check_map, norm2d

FAMILY_NAME = "VGG"
OPTIONS = ("torchvision",)
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        *[64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"],
        *[512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
    ],
}
_TV_NORMS = {"batchnorm": "_bn", "none": ""}


def check_options(name: str, spec, options: dict) -> None:
    if check_bool(name, "torchvision", options.get("torchvision", False)):
        if spec.norm not in _TV_NORMS:
            raise ConfigError(
                f"{name} with torchvision: true: torchvision has no instance-norm VGG; "
                f"write VGG-{spec.depth}-BN (vgg{spec.depth}_bn) or VGG-{spec.depth}-NN "
                f"(vgg{spec.depth}, no norm)"
            )


class VGG(nn.Module):
    def __init__(
        self, depth: int, channels: int, num_classes: int, im_size: tuple[int, int], norm: str
    ):
        super().__init__()
        name = f"VGG-{depth}"
        layers: list[nn.Module] = []
        in_ch, size, pools = channels, im_size, 0
        for item in CONFIGS[depth]:
            if item == "M":
                pools += 1
                size = (size[0] // 2, size[1] // 2)
                check_map(name, size, im_size, f"at max-pool {pools} of 5 (needs >= 32 px)")
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(in_ch, item, kernel_size=3, padding=1))
            norm_layer = norm2d(norm, item, *size)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(nn.ReLU(inplace=True))
            in_ch = item
        layers.append(_head_pool(size, im_size))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def _head_pool(size: tuple[int, int], im_size: tuple[int, int]) -> nn.Module:
    if size == (1, 1):
        return nn.Identity()  # 32 px: the reference's AvgPool2d(1, stride 1) is the identity
    if tuple(im_size) == (64, 64):
        return nn.AvgPool2d(kernel_size=1, stride=2)  # the reference at 64 px: top-left value
    return nn.AdaptiveAvgPool2d(1)


def _torchvision(depth: int, norm: str) -> callable:
    def make(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        import torchvision

        model = torchvision.models.get_model(
            f"vgg{depth}{_TV_NORMS[norm]}", weights=None, num_classes=num_classes
        )
        if channels != 3:
            model.features[0] = nn.Conv2d(channels, 64, kernel_size=3, padding=1)
        return model

    return make


def build(spec, channels, num_classes, im_size, torchvision: bool = False) -> nn.Module:
    if torchvision:
        from ddrank_steps.models.torchvision_models import build_checked

        label = f"VGG-{spec.depth} (torchvision)"
        make = _torchvision(spec.depth, spec.norm)
        return build_checked(label, make, channels, num_classes, im_size)
    return VGG(spec.depth, channels, num_classes, im_size, spec.norm)


def _family():
    from ddrank_steps.models import Family

    return Family(
        builder=build,
        depths=tuple(CONFIGS),
        default_norm="instancenorm",
        norms=("instancenorm", "batchnorm", "none"),
        options=OPTIONS,
        check_options=check_options,
        option_defaults={"torchvision": False},
    )


FAMILY = _family()
