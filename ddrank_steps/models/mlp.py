"""MLP, as the reference's networks.py: Linear(C*H*W, 128) - ReLU - Linear(128, 128) - ReLU -
Linear(128, classes), on the flattened image.

The reference's first layer takes 28*28 inputs for 1 channel and res*res*3 otherwise; here
it takes whatever C*H*W the dataset has (the same count for 3-channel square images).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

FAMILY_NAME = "MLP"


class MLP(nn.Module):
    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int]):
        super().__init__()
        self.fc_1 = nn.Linear(channels * im_size[0] * im_size[1], 128)
        self.fc_2 = nn.Linear(128, 128)
        self.fc_3 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = F.relu(self.fc_1(x.flatten(1)))
        return self.fc_3(F.relu(self.fc_2(x)))


def build(spec, channels, num_classes, im_size) -> MLP:
    return MLP(channels, num_classes, im_size)


def _family():
    from ddrank_steps.models import bare_family

    return bare_family(build)


FAMILY = _family()
