"""ConvNet-D, the standard small network of dataset distillation.

D blocks of [conv3x3(width) -> norm -> activation -> pool(2)], then a linear head on the
flattened map. Defaults (width 128, ReLU, average pooling, instance norm as GroupNorm(width,
width)) match the reference, so ConvNet-3 on 32x32x3 with 10 classes has 320,010 parameters.

`width`, `activation` and `pooling` are model_options (the reference's class has them but its
names cannot reach them). The head is sized to the real input, so any size works as long as
each pooling has at least 2x2 to pool; otherwise the error names the smallest input.
Deliberately not copied: the DC lineage pads the first conv of 1-channel inputs by 3 so that
28-px MNIST acts like 32 px; here every input is taken at its own size.
"""

from __future__ import annotations

from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models.layers import check_choice, check_positive_int, norm2d

FAMILY_NAME = "ConvNet"
OPTIONS = ("width", "activation", "pooling")
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.01),
    "sigmoid": nn.Sigmoid,
}
# The reference's spellings, plus the short ones of the issue tracker and of DC configs.
POOLINGS = {
    "avgpooling": "avgpooling",
    "avg": "avgpooling",
    "maxpooling": "maxpooling",
    "max": "maxpooling",
    "none": "none",
}


def check_options(name: str, spec, options: dict) -> None:
    if "width" in options:
        check_positive_int(name, "width", options["width"])
    if "activation" in options:
        check_choice(name, "activation", options["activation"], ACTIVATIONS)
    if "pooling" in options:
        check_choice(name, "pooling", options["pooling"], POOLINGS)


def spell_options(spec, options: dict) -> dict:
    """The pooling's one spelling (`avg` and `avgpooling` build the same network)."""
    return {**options, "pooling": POOLINGS[options["pooling"]]}


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
        name = f"ConvNet-{depth}"
        check_options(name, None, {"width": width, "activation": activation, "pooling": pooling})
        pooling = POOLINGS[pooling]
        height, w = im_size
        layers: list[nn.Module] = []
        in_ch = channels
        for d in range(depth):
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=1))
            norm_layer = norm2d(norm, width, height, w)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(ACTIVATIONS[activation]())
            if pooling != "none":
                if height < 2 or w < 2:
                    raise ConfigError(
                        f"{name} needs inputs of at least {2**depth}x{2**depth} "
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


def _family():
    from ddrank_steps.models import Family

    return Family(
        builder=build,
        depths=None,
        default_norm="instancenorm",
        norms=("instancenorm", "batchnorm", "groupnorm", "layernorm", "none"),
        options=OPTIONS,
        check_options=check_options,
        option_defaults={"width": 128, "activation": "relu", "pooling": "avgpooling"},
        spell_options=spell_options,
    )


FAMILY = _family()
