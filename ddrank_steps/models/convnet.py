"""ConvNet-D, the standard small network of dataset distillation.

D blocks of [conv3x3(width) -> norm -> activation -> pool(2)], then a linear head.
Defaults (width 128, ReLU, average pooling, instance norm as GroupNorm(width, width))
match the reference, so ConvNet-3 on 32x32x3 with 10 classes has 320,010 parameters.
"""

from __future__ import annotations

from torch import nn

from ddrank_steps.errors import ConfigError

OPTIONS = ("width", "activation", "pooling")
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.01),
    "sigmoid": nn.Sigmoid,
}
POOLINGS = ("avgpooling", "maxpooling", "none")


def _norm(norm: str, width: int, height: int, w: int) -> nn.Module:
    if norm == "instancenorm":
        return nn.GroupNorm(width, width, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(width)
    if norm == "groupnorm":
        return nn.GroupNorm(4, width, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([width, height, w], elementwise_affine=True)
    return nn.Identity()


class ConvNet(nn.Module):
    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: tuple[int, int],
        depth: int,
        norm: str,
        width: int = 128,
        activation: str = "relu",
        pooling: str = "avgpooling",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"model_options.activation '{activation}' not one of {list(ACTIVATIONS)}"
            )
        if pooling not in POOLINGS:
            raise ConfigError(f"model_options.pooling '{pooling}' not one of {list(POOLINGS)}")
        height, w = im_size
        layers: list[nn.Module] = []
        in_ch = channels
        for d in range(depth):
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=1))
            layers.append(_norm(norm, width, height, w))
            layers.append(ACTIVATIONS[activation]())
            if pooling != "none":
                if height < 2 or w < 2:
                    raise ConfigError(
                        f"ConvNet-{depth} needs inputs of at least {2**depth}x{2**depth} "
                        f"with pooling; got {im_size[0]}x{im_size[1]} "
                        f"(feature map vanishes at block {d + 1}). Use a smaller depth."
                    )
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avgpooling" else nn.MaxPool2d(2, 2))
                height, w = height // 2, w // 2
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * height * w, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def build(spec, channels, num_classes, im_size, **options) -> ConvNet:
    return ConvNet(channels, num_classes, im_size, depth=spec.depth, norm=spec.norm, **options)
