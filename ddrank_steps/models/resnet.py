"""ResNet-18/34/50, in the DC style (default) or the torchvision style (`torchvision: true`).

DC style, as the reference's networks.py: stem conv3x3(64, no bias) with stride 1, or 2 from
64 px up (the reference: 2 at exactly 64 px), then norm and ReLU, no max-pool; four stages of
64/128/256/512 channels with strides 1/2/2/2 (BasicBlock [2,2,2,2] / [3,4,6,3], Bottleneck
x4 [3,4,6,3]), projection shortcuts conv1x1 + norm; norm -IN (default, GroupNorm(C, C)) or
-BN. The reference's head, avg_pool2d(4) then Linear(512*expansion), only fits the 4x4 map
of 32 and 64 px; ours averages whatever map is left, which at 4x4 is the same operation,
so outputs and parameter counts agree with the reference at 32 and 64 px. No size makes
the map vanish, but an instance-norm ResNet refuses inputs whose last map is 1x1 (below 16 px),
where the norm would erase every feature.

torchvision style: torchvision's resnet{D}(num_classes), always batch norm, so the name
must say -BN. At 64 px and below the stem becomes conv3x3(64, stride 1, no bias) and the
max-pool is dropped, as the reference does at 32 and 64 px; above, the stock stem stays.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models.layers import check_bool, conv_out, norm2d, stem_stride

FAMILY_NAME = "ResNet"
OPTIONS = ("torchvision",)


def check_options(name: str, spec, options: dict) -> None:
    if check_bool(name, "torchvision", options.get("torchvision", False)):
        if spec.norm != "batchnorm":
            raise ConfigError(
                f"{name} with torchvision: true: torchvision's ResNets use batch norm; "
                f"write ResNet-{spec.depth}-BN"
            )


def _norm(norm: str, channels: int) -> nn.Module:
    return norm2d(norm, channels, 1, 1)  # ResNet norms are IN or BN: no spatial shape needed


def _shortcut(in_planes: int, out_planes: int, stride: int, norm: str) -> nn.Sequential:
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()  # identity; an empty Sequential keeps the reference's keys
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        _norm(norm, out_planes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = _norm(norm, planes)
        self.shortcut = _shortcut(in_planes, planes, stride, norm)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = _norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _norm(norm, planes * 4)
        self.shortcut = _shortcut(in_planes, planes * 4, stride, norm)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


LAYOUTS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    def __init__(
        self, depth: int, channels: int, num_classes: int, im_size: tuple[int, int], norm: str
    ):
        super().__init__()
        block, counts = LAYOUTS[depth]
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=stem_stride(im_size), padding=1, bias=False)
        self.bn1 = _norm(norm, 64)
        in_planes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
            blocks = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_planes, planes, stride, norm))
                in_planes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        # Stride-2 3x3 convs with padding 1 map 1 px to 1 px, so no input size vanishes; but
        # instance norm over a 1x1 map outputs its bias whatever the input, silently.
        last = _last_map(im_size)
        if norm == "instancenorm" and last == (1, 1):
            raise ConfigError(
                f"ResNet-{depth} with instance norm cannot take {im_size[0]}x{im_size[1]} "
                f"inputs: its last stage's map is 1x1, where instance norm erases every "
                f"feature. Use ResNet-{depth}-BN or inputs of at least 16 px."
            )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.classifier(self.avgpool(out).flatten(1))


def _last_map(im_size: tuple[int, int]) -> tuple[int, int]:
    size = tuple(conv_out(n, 3, stem_stride(im_size), 1) for n in im_size)
    for _ in range(3):  # the stride-2 first blocks of stages 2-4
        size = tuple(conv_out(n, 3, 2, 1) for n in size)
    return size


def _torchvision(depth: int):
    def make(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
        import torchvision

        model = torchvision.models.get_model(
            f"resnet{depth}", weights=None, num_classes=num_classes
        )
        if max(im_size) <= 64:
            # The reference's small-input stem: no early downsampling at all.
            model.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        elif channels != 3:
            model.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
        return model

    return make


def build(spec, channels, num_classes, im_size, torchvision: bool = False) -> nn.Module:
    if torchvision:
        from ddrank_steps.models.torchvision_models import build_checked

        label = f"ResNet-{spec.depth}-BN (torchvision)"
        return build_checked(label, _torchvision(spec.depth), channels, num_classes, im_size)
    return ResNet(spec.depth, channels, num_classes, im_size, spec.norm)


def _family():
    from ddrank_steps.models import Family

    return Family(
        builder=build,
        depths=tuple(LAYOUTS),
        default_norm="instancenorm",
        norms=("instancenorm", "batchnorm"),
        options=OPTIONS,
        check_options=check_options,
        option_defaults={"torchvision": False},
    )


FAMILY = _family()
