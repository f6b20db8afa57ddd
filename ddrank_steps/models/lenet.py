"""LeNet, as the reference's networks.py: conv5x5(6, no padding, stride s) - ReLU - maxpool2 -
conv5x5(16) - ReLU - maxpool2 - Linear(16*h*w, 120) - ReLU - Linear(120, 84) - ReLU -
Linear(84, classes).

The reference strides the first conv by 2 whenever the input is not 32 px and fixes the
first linear layer at 16*5*5, which fits 32 and 64 px only; here the stride is 2 from 64 px
up and the layer is sized to the real map (5x5 at 32 and 64 px, the reference's count).
Inputs need at least 16 px (two unpadded 5x5 convs and two pools).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ddrank_steps.models.layers import check_map, conv_out, stem_stride

FAMILY_NAME = "LeNet"


class LeNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int]):
        super().__init__()
        stride = stem_stride(im_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, stride=stride),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        size = im_size
        for i, s in enumerate((stride, 1)):
            size = tuple(conv_out(n, 5, s) for n in size)
            check_map("LeNet", size, im_size, f"at conv {i + 1} (needs >= 16 px)")
            size = tuple(n // 2 for n in size)
            check_map("LeNet", size, im_size, f"at max-pool {i + 1} (needs >= 16 px)")
        self.fc_1 = nn.Linear(16 * size[0] * size[1], 120)
        self.fc_2 = nn.Linear(120, 84)
        self.fc_3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.features(x).flatten(1)
        return self.fc_3(F.relu(self.fc_2(F.relu(self.fc_1(x)))))


def build(spec, channels, num_classes, im_size) -> LeNet:
    return LeNet(channels, num_classes, im_size)


def _family():
    from ddrank_steps.models import bare_family

    return bare_family(build)


FAMILY = _family()
