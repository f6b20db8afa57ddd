"""Image-folder transforms built from the reference's YAML list."""

from __future__ import annotations

import pytest
import torch
import yaml
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from ddrank_steps.errors import ConfigError
from ddrank_steps.transforms.build import build_transforms, check_transforms

# The reference's Demo_LRS_Soft_Label.yaml, verbatim.
REFERENCE_YAML = """
custom_train_trans:
  - name: RandomResizedCrop
    args:
      size: 64
      scale: [0.08, 1.0]
  - name: RandomHorizontalFlip
    args:
      p: 0.5
  - name: ToTensor
  - name: Normalize
    args:
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
custom_val_trans:
  - name: Resize
    args:
      size: 256
  - name: CenterCrop
    args:
      size: 64
  - name: ToTensor
  - name: Normalize
    args:
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
"""


def image(size=(300, 200)) -> Image.Image:
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


@pytest.mark.filterwarnings("ignore:The transform `ToTensor\\(\\)` is deprecated")
@pytest.mark.parametrize("key", ["custom_train_trans", "custom_val_trans"])
def test_reference_demo_lists_build_and_run(key):
    pipeline = build_transforms(yaml.safe_load(REFERENCE_YAML)[key])
    assert isinstance(pipeline, v2.Compose)
    out = pipeline(image())
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32


def test_none_means_no_transforms():
    assert build_transforms(None) is None
    check_transforms(None)


def test_positional_args_nesting_and_string_enums():
    pipeline = build_transforms(
        [
            {"name": "Resize", "args": [32]},
            {"name": "RandomApply", "args": {"transforms": [{"name": "Grayscale"}], "p": 0.0}},
            {"name": "CenterCrop", "args": {"size": 24}},
            {"name": "ToImage"},
            {"name": "ToDtype", "args": {"dtype": "float32", "scale": True}},
        ]
    )
    resize, apply = pipeline.transforms[0], pipeline.transforms[1]
    assert resize.size == [32]
    assert isinstance(apply.transforms[0], v2.Grayscale)
    out = pipeline(image())
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32 and out.max() <= 1.0
    bicubic = build_transforms(
        [{"name": "Resize", "args": {"size": 8, "interpolation": "bicubic"}}]
    )
    assert bicubic.transforms[0].interpolation == InterpolationMode.BICUBIC


def test_names_missing_from_v2_fall_back_to_the_old_api(monkeypatch):
    from torchvision import transforms as v1

    monkeypatch.delattr(v2, "Grayscale")
    pipeline = build_transforms([{"name": "Grayscale"}])
    assert isinstance(pipeline.transforms[0], v1.Grayscale)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"name": "RandomCrp", "args": {"size": 4}}], r"transforms\[0\]: unknown.*RandomCrop"),
        ([{"name": "InterpolationMode"}], r"unknown transform 'InterpolationMode'"),
        ([{"name": "functional"}], r"unknown transform 'functional'"),
        (
            [{"name": "ToImage"}, {"name": "Resize", "args": {"sise": 32}}],
            r"transforms\[1\] \(Resize\): bad args \{'sise': 32\}",
        ),
        ([{"name": "Resize", "args": 32}], r"transforms\[0\] \(Resize\): args must be a mapping"),
        ([{"name": "Resize", "arg": [32]}], r"transforms\[0\] has unknown keys \['arg'\]"),
        ([{"args": [32]}], r"transforms\[0\] must be a mapping with a 'name'"),
        ({"name": "Resize"}, r"transforms must be a list"),
        (
            [{"name": "RandomApply", "args": {"transforms": [{"name": "Nope"}]}}],
            r"transforms\[0\] \(RandomApply\)\.transforms\[0\]: unknown transform 'Nope'",
        ),
        ([{"name": "Resize", "args": {"size": 8, "interpolation": "smooth"}}], "interpolation"),
        ([{"name": "ToDtype", "args": {"dtype": "float33"}}], r"'float33' is not a torch dtype"),
    ],
)
def test_bad_specs_are_config_errors_naming_the_item(spec, message):
    with pytest.raises(ConfigError, match=message):
        check_transforms(spec)
