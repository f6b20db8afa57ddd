"""The model zoo: the reference's parameter counts, forward passes at several sizes and
channel counts, the reference's state-dict names, and strict names and options."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import (
    ModelSpec,
    available_models,
    build_model,
    check_model_options,
    parse_model_name,
)

TV = {"torchvision": True}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def _cached(name: str, options: tuple, channels: int, size: int) -> nn.Module:
    return build_model(name, 10, channels, (size, size), dict(options)).eval()


def model_for(name: str, options: dict, channels: int = 3, size: int = 32) -> nn.Module:
    """A model in eval mode with 10 classes, built once per configuration: the big ones take
    a second or more to initialise, and no test here changes a model."""
    return _cached(name, tuple(sorted(options.items())), channels, size)


def logits(model: nn.Module, channels: int, size: int) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(1, channels, size, size))


# Reference counts for 3 channels and 10 classes. Each was worked out by hand from the layer
# lists of the reference's networks.py / model.py (conv: in*out*k*k + bias, norms 2 per
# channel, linear in*out + out) and agrees with the published counts of the same networks
# (kuangliu/pytorch-cifar: ResNet-18 11,173,962, VGG-16 14,728,266; torchvision resnet18
# 11,689,512 at 1000 classes, minus the 7x7 stem and the head). torchvision-style rows apply
# the reference's small-input changes to torchvision's models.
PARAMETER_COUNTS = [
    # name, options, size, parameters
    ("ConvNet-3", {}, 32, 320_010),
    ("ConvNet-3-BN", {}, 32, 320_010),
    ("ConvNet-3-GN", {}, 32, 320_010),
    ("ConvNet-3-LN", {}, 32, 663_306),
    ("ConvNet-3-NN", {}, 32, 319_242),
    ("ConvNet-3", {}, 64, 381_450),
    ("ConvNet-4", {}, 64, 467_850),
    ("ConvNet-4-BN", {}, 64, 467_850),
    ("AlexNet", {}, 32, 1_872_202),
    ("AlexNet", {}, 64, 1_872_202),
    ("LeNet", {}, 32, 62_006),
    ("LeNet", {}, 64, 62_006),
    ("MLP", {}, 32, 411_146),
    ("MLP", {}, 64, 1_590_794),
    ("VGG-11", {}, 32, 9_231_114),
    ("VGG-11-BN", {}, 32, 9_231_114),
    ("VGG-11", {}, 64, 9_231_114),
    ("VGG-13", {}, 32, 9_416_010),
    ("VGG-16", {}, 32, 14_728_266),
    ("VGG-19", {}, 32, 20_040_522),
    ("ResNet-18", {}, 32, 11_173_962),
    ("ResNet-18-BN", {}, 32, 11_173_962),
    ("ResNet-18", {}, 64, 11_173_962),
    ("ResNet-34", {}, 32, 21_282_122),
    ("ResNet-50", {}, 32, 23_520_842),
    ("ResNet-50-BN", {}, 64, 23_520_842),
    ("ResNet-18-BN", TV, 32, 11_173_962),
    ("ResNet-18-BN", TV, 64, 11_173_962),
    ("ResNet-50-BN", TV, 32, 23_520_842),
    ("AlexNet", TV, 32, 57_023_242),
    ("VGG-11-BN", TV, 32, 128_812_810),
    ("VGG-11-NN", TV, 32, 128_807_306),
]


@pytest.mark.parametrize(("name", "options", "size", "expected"), PARAMETER_COUNTS)
def test_parameter_count_equals_the_reference(name, options, size, expected):
    assert count(model_for(name, options, 3, size)) == expected


def test_torchvision_name_has_torchvisions_own_count():
    # resnet18 with 10 classes: 11,689,512 - 512*1000 - 1000 + 512*10 + 10
    assert count(model_for("torchvision:resnet18", {}, 3, 224)) == 11_181_642


# --- forward passes ---------------------------------------------------------------------------

FAMILIES = [
    ("ConvNet-3", {"width": 16}),
    ("ConvNet-3-LN", {"width": 8}),
    ("AlexNet", {}),
    ("AlexNet", TV),
    ("VGG-11", {}),
    ("VGG-11-NN", TV),
    ("ResNet-18", {}),
    ("ResNet-18-BN", TV),
    ("LeNet", {}),
    ("MLP", {}),
    ("torchvision:resnet18", {}),
]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize(("name", "options"), FAMILIES)
def test_forward_gives_logits_at_32_and_64_px(name, options, size):
    assert logits(model_for(name, options, 3, size), 3, size).shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("AlexNet", TV),
        ("ResNet-18-BN", TV),
        ("torchvision:resnet18", {}),
        ("torchvision:mobilenet_v3_small", {}),
    ],
)
def test_torchvision_models_forward_at_224_px(name, options):
    assert logits(model_for(name, options, 3, 224), 3, 224).shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "options", "channels", "size"),
    [
        ("ConvNet-3", {"width": 8}, 1, 28),
        ("AlexNet", {}, 1, 8),  # the digits: 8 -> 4 -> 2 -> 1
        ("AlexNet", {}, 3, 96),
        ("AlexNet", TV, 1, 28),
        ("VGG-11", {}, 1, 48),
        ("VGG-11", {}, 3, 96),
        ("ResNet-18-BN", {}, 1, 8),
        ("ResNet-18", {}, 3, 28),
        ("ResNet-50", {}, 1, 16),  # the bottleneck blocks
        ("ResNet-18-BN", {}, 3, 96),
        ("ResNet-18-BN", TV, 1, 28),
        ("ResNet-18-BN", TV, 1, 96),
        ("LeNet", {}, 1, 28),
        ("LeNet", {}, 3, 96),
        ("MLP", {}, 1, 8),
        ("torchvision:resnet18", {}, 1, 32),
    ],
)
def test_heads_fit_other_sizes_and_channel_counts(name, options, channels, size):
    assert logits(model_for(name, options, channels, size), channels, size).shape == (1, 10)


def test_vgg_at_64_px_keeps_the_top_left_value_as_the_reference():
    model = model_for("VGG-11", {}, 3, 64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before_pool = model.features[:-1](x)
        assert before_pool.shape[-2:] == (2, 2)
        expected = model.classifier(before_pool[:, :, 0, 0])
        assert torch.allclose(model(x), expected)


def test_resnet_head_is_the_references_avg_pool_of_4_at_32_px():
    model = model_for("ResNet-18", {})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = torch.relu(model.bn1(model.conv1(x)))
        out = model.layer4(model.layer3(model.layer2(model.layer1(out))))
        expected = model.classifier(nn.functional.avg_pool2d(out, 4).flatten(1))
        assert torch.allclose(model(x), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "options", "size", "stride"),
    [
        ("ResNet-18", {}, 32, 1),
        ("ResNet-18", {}, 64, 2),
        ("AlexNet", {}, 32, 1),
        ("AlexNet", {}, 64, 2),
        ("LeNet", {}, 32, 1),
        ("LeNet", {}, 64, 2),
    ],
)
def test_dc_stems_stride_as_the_reference_at_32_and_64(name, options, size, stride):
    model = model_for(name, options, 3, size)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.stride == (stride, stride)


@pytest.mark.parametrize(("name", "size"), [("ResNet-18-BN", 64), ("AlexNet", 32)])
def test_torchvision_style_small_input_stem(name, size):
    model = model_for(name, TV, 3, size)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (first.kernel_size, first.stride, first.bias) == ((3, 3), (1, 1), None)


def test_torchvision_resnet_keeps_its_stock_stem_above_64_px():
    model = model_for("ResNet-18-BN", TV, 3, 224)
    assert model.conv1.kernel_size == (7, 7)
    assert isinstance(model.maxpool, nn.MaxPool2d)


# --- state-dict names, so the reference's checkpoints (teachers) load -------------------------


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("ConvNet-3", ["features.0.weight", "features.1.weight", "features.4.weight"]),
        ("ConvNet-3-NN", ["features.0.weight", "features.3.weight", "classifier.weight"]),
        ("AlexNet", ["features.0.weight", "features.3.weight", "features.10.weight", "fc.bias"]),
        ("LeNet", ["features.0.weight", "features.3.weight", "fc_1.weight", "fc_3.bias"]),
        ("MLP", ["fc_1.weight", "fc_2.weight", "fc_3.bias"]),
        ("VGG-11", ["features.0.weight", "features.1.weight", "features.4.weight"]),
        (
            "ResNet-18-BN",
            [
                "conv1.weight",
                "bn1.running_mean",
                "layer1.0.conv1.weight",
                "layer2.0.shortcut.0.weight",
                "layer2.0.shortcut.1.weight",
                "classifier.weight",
            ],
        ),
    ],
)
def test_state_dict_names_are_the_references(name, keys):
    state = model_for(name, {}).state_dict()
    assert set(keys) <= set(state)


def test_resnet_identity_shortcut_has_no_parameters():
    state = model_for("ResNet-18", {}).state_dict()
    assert not any(k.startswith("layer1.0.shortcut") for k in state)


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [("ConvNet-3", {"width": 8}), ("ResNet-18", {}), ("ResNet-18-BN", TV), ("MLP", {})],
)
def test_same_seed_gives_same_initial_weights(name, options):
    def weights(seed):
        torch.manual_seed(seed)
        return build_model(name, 10, 1, (32, 32), options).state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --- names and options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("AlexNet", ModelSpec("AlexNet", None, "none")),
        ("LeNet", ModelSpec("LeNet", None, "none")),
        ("MLP", ModelSpec("MLP", None, "none")),
        ("VGG-16-BN", ModelSpec("VGG", 16, "batchnorm")),
        ("VGG-19", ModelSpec("VGG", 19, "instancenorm")),
        ("ResNet-50", ModelSpec("ResNet", 50, "instancenorm")),
        ("torchvision:resnet18", ModelSpec("torchvision", None, None, "resnet18")),
    ],
)
def test_names_parse(name, spec):
    assert parse_model_name(name) == spec


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ResNet-20", r"depth 20 not in \[18, 34, 50\]"),
        ("VGG-12-BN", r"depth 12 not in \[11, 13, 16, 19\]"),
        ("ResNet-18-GN", r"norm suffix 'GN' is not one of \['BN', 'IN'\]"),
        ("VGG-11-LN", r"norm suffix 'LN' is not one of \['BN', 'IN', 'NN'\]"),
        ("AlexNet-5", r"AlexNet takes no depth or norm suffix; write 'AlexNet'"),
        ("LeNet-BN", r"LeNet takes no depth or norm suffix"),
        ("Resnet-18", r"family 'Resnet'.*did you mean \['ResNet'\]"),
        ("torchvision:resnet19", r"not a torchvision classification model.*resnet18"),
        ("torchvision:fasterrcnn_resnet50_fpn", r"not a torchvision classification model"),
    ],
)
def test_bad_names_are_errors_that_list_the_choices(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_model_name(name)


def test_unknown_family_lists_every_family_and_the_torchvision_form():
    with pytest.raises(ConfigError) as err:
        parse_model_name("DenseNet-121")
    for family in ["AlexNet", "ConvNet", "LeNet", "MLP", "ResNet", "VGG", "torchvision:<name>"]:
        assert family in str(err.value)
    assert "torchvision:<name>" in available_models()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ResNet-18", {"width": 64}, r"model_options\.width is not an option of ResNet"),
        ("MLP", {"width": 64}, r"model_options\.width is not an option of MLP; valid: \[\]"),
        ("torchvision:resnet18", {"torchvision": True}, r"not an option of torchvision"),
        ("ResNet-18", {"torchvision": "yes"}, r"torchvision of ResNet-18 must be true or false"),
        ("ResNet-18", TV, r"torchvision's ResNets use batch norm; write ResNet-18-BN"),
        ("VGG-11", TV, r"no instance-norm VGG; write VGG-11-BN .* or VGG-11-NN"),
        ("ConvNet-3", {"width": 0}, r"width of ConvNet-3 must be a positive integer"),
        ("ConvNet-3", {"pooling": "sum"}, r"pooling 'sum' of ConvNet-3 is not one of"),
        ("ConvNet-3", {"activation": "gelu"}, r"activation 'gelu'.*'relu', 'leakyrelu'"),
    ],
)
def test_bad_options_are_errors_at_config_time(name, options, message):
    with pytest.raises(ConfigError, match=message):
        check_model_options(name, options)


@pytest.mark.parametrize(
    ("name", "options", "channels", "size", "message"),
    [
        ("VGG-11", {}, 3, 16, r"VGG-11 cannot take 16x16 inputs.*max-pool 5 of 5"),
        ("LeNet", {}, 1, 8, r"LeNet cannot take 8x8 inputs.*conv 2"),
        ("AlexNet", {}, 1, 4, r"AlexNet cannot take 4x4 inputs.*max-pool 3 of 3"),
        ("ResNet-18", {}, 1, 8, r"ResNet-18 with instance norm cannot take 8x8.*-BN"),
        ("AlexNet", TV, 3, 8, r"AlexNet \(torchvision\) cannot take 3x8x8 inputs"),
        ("torchvision:vit_b_16", {}, 3, 32, r"torchvision:vit_b_16 cannot take 3x32x32"),
    ],
)
def test_too_small_inputs_are_clear_errors(name, options, channels, size, message):
    with pytest.raises(ConfigError, match=message):
        build_model(name, 10, channels, (size, size), options)


@pytest.mark.parametrize("pooling", ["avg", "avgpooling", "max", "maxpooling", "none"])
def test_convnet_pooling_spellings(pooling):
    model = build_model("ConvNet-2", 3, 1, (8, 8), {"width": 4, "pooling": pooling})
    pools = [m for m in model.modules() if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert len(pools) == (0 if pooling == "none" else 2)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 3)


@pytest.mark.parametrize(
    ("activation", "layer"),
    [("relu", nn.ReLU), ("leakyrelu", nn.LeakyReLU), ("sigmoid", nn.Sigmoid)],
)
def test_convnet_activations(activation, layer):
    model = build_model("ConvNet-2", 3, 1, (8, 8), {"width": 4, "activation": activation})
    assert sum(isinstance(m, layer) for m in model.modules()) == 2


def test_convnet_on_odd_size_sizes_head_to_the_floored_map():
    # 13 -> 6 -> 3: head 8 * 3 * 3
    model = build_model("ConvNet-2", 3, 1, (13, 13), {"width": 8})
    assert model.classifier.in_features == 72
    assert model(torch.zeros(1, 1, 13, 13)).shape == (1, 3)


def test_bad_build_arguments_are_errors():
    with pytest.raises(ConfigError, match="channels must be a positive integer"):
        build_model("MLP", 10, 0, (8, 8))
    with pytest.raises(ConfigError, match="im_size must be"):
        build_model("MLP", 10, 1, (8,))
