"""AlexNet, in the DC style (default) or the torchvision style (`torchvision: true`).

DC style, as the reference's networks.py: conv5x5(128, stride s, pad 2) - ReLU - maxpool2 -
conv5x5(192, pad 2) - ReLU - maxpool2 - conv3x3(256) - ReLU - conv3x3(192) - ReLU -
conv3x3(192) - ReLU - maxpool2 - Linear(192*h*w, classes); no norm, no dropout. The
reference's head is fixed at 192*4*4, which only fits 32 and 64 px; ours is sized to the
real map (4x4 at 32 and 64 px, so the parameter count is the reference's there).

torchvision style: torchvision's alexnet(num_classes). At 64 px and below the first conv
becomes conv3x3(64, stride 1, pad 1, no bias), as the reference does at 32 and 64 px; the
adaptive pool before the classifier fits any size that survives the three max-pools.
"""

from __future__ import annotations

from torch import nn

from ddrank_steps.models.layers import check_bool, check_map, conv_out, stem_stride

FAMILY_NAME = "AlexNet"
OPTIONS = ("torchvision",)


def check_options(name: str, spec, options: dict) -> None:
    if "torchvision" in options:
        check_bool(name, "torchvision", options["torchvision"])


class AlexNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int]):
        super().__init__()
        stride = stem_stride(im_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, kernel_size=5, stride=stride, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        size = tuple(conv_out(s, 5, stride, 2) for s in im_size)
        for i in range(3):
            size = tuple(s // 2 for s in size)
            check_map("AlexNet", size, im_size, f"at max-pool {i + 1} of 3")
        self.fc = nn.Linear(192 * size[0] * size[1], num_classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def _torchvision(channels: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    from torchvision.models import alexnet

    model = alexnet(weights=None, num_classes=num_classes)
    if max(im_size) <= 64:
        # The reference's small-input stem: keep the resolution the stock 11x11/4 conv drops.
        model.features[0] = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    elif channels != 3:
        model.features[0] = nn.Conv2d(channels, 64, kernel_size=11, stride=4, padding=2)
    return model


def build(spec, channels, num_classes, im_size, torchvision: bool = False) -> nn.Module:
    if torchvision:
        from ddrank_steps.models.torchvision_models import build_checked

        return build_checked("AlexNet (torchvision)", _torchvision, channels, num_classes, im_size)
    return AlexNet(channels, num_classes, im_size)


def _family():
    from ddrank_steps.models import bare_family

    return bare_family(build, OPTIONS, check_options, {"torchvision": False})


FAMILY = _family()
