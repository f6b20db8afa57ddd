"""Model names are parsed strictly; ConvNet matches the reference's size and shapes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from ddrank_steps.errors import ConfigError
from ddrank_steps.models import ModelSpec, build_model, check_model_options, parse_model_name

REPO = Path(__file__).resolve().parents[1]


def test_convnet_without_suffix_defaults_to_instancenorm():
    assert parse_model_name("ConvNet-3") == ModelSpec("ConvNet", 3, "instancenorm")


@pytest.mark.parametrize(
    ("suffix", "norm"),
    [
        ("BN", "batchnorm"),
        ("IN", "instancenorm"),
        ("GN", "groupnorm"),
        ("LN", "layernorm"),
        ("NN", "none"),
    ],
)
def test_norm_suffix_maps_to_its_norm(suffix, norm):
    assert parse_model_name(f"ConvNet-4-{suffix}") == ModelSpec("ConvNet", 4, norm)


def test_unknown_family_lists_the_known_families():
    with pytest.raises(ConfigError, match=r"unknown model 'ResNt-18'.*family 'ResNt'.*ConvNet"):
        parse_model_name("ResNt-18")


def in_fresh_process(code: str) -> None:
    """Run `code` in a new interpreter, where no model family is loaded yet."""
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, cwd=REPO)


def test_the_families_load_only_when_a_name_of_theirs_is_used():
    # torch-free to import; a ConvNet name loads convnet (and torch), and no other family
    in_fresh_process(
        """
        import sys
        import ddrank_steps.models as m
        assert "torch" not in sys.modules and not m.FAMILIES
        m.check_model_options("ConvNet-3", {"width": 8})
        loaded = sorted(k for k in sys.modules if k.startswith("ddrank_steps.models."))
        assert loaded == ["ddrank_steps.models.convnet", "ddrank_steps.models.layers"], loaded
        assert sorted(m.FAMILIES) == ["ConvNet"]
        """
    )


def test_an_unknown_family_lists_every_family_before_any_is_loaded():
    in_fresh_process(
        """
        import sys
        from ddrank_steps.errors import ConfigError
        from ddrank_steps.models import available_models, parse_model_name
        try:
            parse_model_name("Resnet-18")
        except ConfigError as exc:
            message = str(exc)
        known = ["AlexNet", "ConvNet", "LeNet", "MLP", "ResNet", "VGG", "torchvision:<name>",
                 "timm:<name>"]
        assert f"is not one of {known}; did you mean ['ResNet']?" in message, message
        assert available_models() == known
        assert "torch" not in sys.modules
        """
    )


def test_non_integer_depth_is_rejected():
    with pytest.raises(
        ConfigError, match=r"unknown model 'ConvNet-x': depth 'x' is not an integer"
    ):
        parse_model_name("ConvNet-x")


def test_zero_depth_is_rejected():
    with pytest.raises(ConfigError, match=r"depth 0 not in any positive integer"):
        parse_model_name("ConvNet-0")


def test_missing_depth_is_rejected():
    with pytest.raises(ConfigError, match=r"expected 'ConvNet-<depth>\[-<norm>\]'"):
        parse_model_name("ConvNet")


def test_unknown_norm_suffix_lists_the_valid_suffixes():
    with pytest.raises(ConfigError, match=r"norm suffix 'XX' is not one of \['BN', 'IN', 'GN'"):
        parse_model_name("ConvNet-3-XX")


def test_convnet3_on_cifar_shape_has_reference_parameter_count():
    # conv 3→128: 3·128·9 + 128 = 3,584; two conv 128→128: 2·(128·128·9 + 128) = 295,168;
    # three instance norms (GroupNorm affine): 3·256 = 768; head 128·4·4·10 + 10 = 20,490
    # total = 3,584 + 295,168 + 768 + 20,490 = 320,010
    model = build_model("ConvNet-3", 10, 3, (32, 32))
    assert sum(p.numel() for p in model.parameters()) == 320_010


def test_convnet3_forward_on_32x32x3_gives_logits_per_class():
    model = build_model("ConvNet-3", 10, 3, (32, 32), {"width": 8})
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_convnet3_forward_on_8x8x1_gives_logits_per_class():
    model = build_model("ConvNet-3", 10, 1, (8, 8), {"width": 8})
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("ConvNet-2", nn.GroupNorm),
        ("ConvNet-2-BN", nn.BatchNorm2d),
        ("ConvNet-2-GN", nn.GroupNorm),
        ("ConvNet-2-LN", nn.LayerNorm),
    ],
)
def test_norm_suffix_builds_its_norm_layer(name, layer):
    model = build_model(name, 10, 1, (8, 8), {"width": 8})
    assert sum(isinstance(m, layer) for m in model.modules()) == 2


def first_group_norm(name: str) -> nn.GroupNorm:
    model = build_model(name, 10, 1, (8, 8), {"width": 8})
    return next(m for m in model.modules() if isinstance(m, nn.GroupNorm))


def test_instancenorm_is_one_group_per_channel_and_groupnorm_is_four_groups():
    inorm, gnorm = first_group_norm("ConvNet-1"), first_group_norm("ConvNet-1-GN")
    assert (inorm.num_groups, gnorm.num_groups) == (8, 4)


def test_nn_suffix_builds_no_norm_layers():
    model = build_model("ConvNet-2-NN", 10, 1, (8, 8), {"width": 8})
    norms = (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm)
    assert not any(isinstance(m, norms) for m in model.modules())


def test_too_deep_convnet_for_the_input_size_names_the_sizes():
    # 8 → 4 → 2 → 1, and a fourth pooling has nothing left to pool
    with pytest.raises(ConfigError, match=r"ConvNet-4 needs inputs of at least 16x16.*got 8x8"):
        build_model("ConvNet-4", 10, 1, (8, 8))


def test_unknown_model_option_is_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"model_options\.depth is not an option of ConvNet"):
        build_model("ConvNet-3", 10, 1, (8, 8), {"depth": 2})


def test_check_model_options_rejects_unknown_keys_without_building():
    with pytest.raises(ConfigError, match=r"valid: \['width', 'activation', 'pooling'\]"):
        check_model_options("ConvNet-3", {"widht": 64})


def test_unknown_activation_option_is_rejected():
    with pytest.raises(ConfigError, match=r"model_options\.activation 'gelu'"):
        build_model("ConvNet-1", 10, 1, (8, 8), {"activation": "gelu"})


def test_width_option_sets_the_conv_width():
    model = build_model("ConvNet-1", 10, 1, (8, 8), {"width": 16})
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.out_channels == 16
