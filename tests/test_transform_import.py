"""A user's own transform class named by import path (`package.module:Class`) in a
protocol's lists, and `compose_to_spec`, which writes a Python torchvision Compose (v1 or
v2, as DD-Ranking users pass `custom_train_trans`) in the list format (issue #11, item 1)."""

from __future__ import annotations

import copy
import functools
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate
from test_transforms import REFERENCE_YAML
from torchvision import transforms as v1
from torchvision.transforms import v2

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.transforms.batches import BatchTransform
from ddrank_steps.transforms.build import build_transforms, check_transforms
from ddrank_steps.transforms.from_torchvision import compose_to_spec

REPO = Path(__file__).resolve().parents[1]
MODULE = "ddrank_user_transforms"  # written by the `user_module` fixture
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

USER_MODULE = '''
import torch


class ShufflePatches(torch.nn.Module):
    """RDED-style: the image cut into `factor` vertical strips, put back in random order."""

    def __init__(self, factor=2):
        super().__init__()
        self.factor = factor

    def forward(self, img):
        strips = list(torch.chunk(img, self.factor, dim=-1))
        order = torch.randperm(len(strips)).tolist()
        return torch.cat([strips[i] for i in order], dim=-1)


class Brighten:
    """Deterministic and not an nn.Module: any callable class will do."""

    def __init__(self, gain=1.0, clamp=True):
        self.gain, self.clamp = gain, clamp

    def __call__(self, img):
        out = img * self.gain
        return out.clamp(0, 1) if self.clamp else out


class Normalize:
    """A user's class that happens to share torchvision's name: the identity."""

    def __call__(self, img):
        return img


class Hidden:
    def __init__(self, k):
        self._k = k

    def __call__(self, img):
        return img


class Star:
    def __init__(self, *sizes):
        self.sizes = sizes

    def __call__(self, img):
        return img


def not_a_class(img):
    return img
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(USER_MODULE)
    (tmp_path / "ddrank_broken_transforms.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield sys.modules.get(MODULE) or __import__(MODULE)
    for name in (MODULE, "ddrank_broken_transforms"):
        sys.modules.pop(name, None)


def pixels(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def outputs(transform, images: torch.Tensor, seed: int = 7) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.stack([transform(image) for image in images])


def meta(size: int, mean_std=IMAGENET) -> DatasetMeta:
    return DatasetMeta(
        name="toy",
        num_classes=3,
        channels=3,
        height=size,
        width=size,
        mean=mean_std[0],
        std=mean_std[1],
        max_value=255.0,
        classes=["a", "b", "c"],
    )


# --- a user's class by import path, in the lists --------------------------------------------


def test_a_user_class_is_built_by_import_path_with_its_args(user_module):
    built = build_transforms(
        [
            {"name": f"{MODULE}:Brighten", "args": {"gain": 2.0}},
            {"name": f"{MODULE}:ShufflePatches", "args": [4]},
            {"name": "RandomApply", "args": {"transforms": [{"name": f"{MODULE}:Brighten"}]}},
        ]
    )
    brighten, shuffle, nested = built.transforms
    assert type(brighten) is user_module.Brighten and brighten.gain == 2.0
    assert type(shuffle) is user_module.ShufflePatches and shuffle.factor == 4
    assert type(nested.transforms[0]) is user_module.Brighten
    image = pixels(1)[0] / 4
    assert torch.equal(brighten(image), image * 2.0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "ddrank_no_such_module:ShufflePatches",
            r"train_transforms\[1\]: cannot import module 'ddrank_no_such_module' of transform "
            r"'ddrank_no_such_module:ShufflePatches' .*install its package or put its folder "
            r"on PYTHONPATH",
        ),
        (f"{MODULE}:Nope", rf"train_transforms\[1\]: module '{MODULE}' has no 'Nope'"),
        (f"{MODULE}:not_a_class", r"is a function, not a class"),
        ("ddrank_broken_transforms:X", r"importing module .* failed: RuntimeError: boom"),
        (f"{MODULE}:", r"is not an import path of the form 'package.module:ClassName'"),
        (f":{MODULE}", r"is not an import path of the form"),
        (f"{MODULE}:A:B", r"is not an import path of the form"),
    ],
)
def test_import_errors_name_the_list_the_item_and_the_fix(user_module, name, message):
    spec = [{"name": "RandomHorizontalFlip"}, {"name": name}]
    with pytest.raises(ConfigError, match=message):
        check_transforms(spec, "train_transforms")


def test_a_user_class_with_bad_args_is_a_config_error(user_module):
    with pytest.raises(ConfigError, match=rf"\[0\] \({MODULE}:Brighten\): bad args"):
        check_transforms([{"name": f"{MODULE}:Brighten", "args": {"gian": 2}}])


def test_an_unknown_name_mentions_the_import_path_form():
    with pytest.raises(ConfigError, match=r"a class of your own is named by import path"):
        check_transforms([{"name": "ShufflePatchesXYZ"}])


def test_the_planner_checks_user_classes_before_any_job(user_module):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # defaults
    name, protocol = next(iter(config["protocols"].items()))
    protocol["train_transforms"] = [{"name": "ddrank_no_such_module:ShufflePatches"}]
    with pytest.raises(ConfigError, match=rf"protocols\.{name}: train_transforms\[0\]: cannot"):
        build_plan(config)
    protocol["train_transforms"] = [{"name": f"{MODULE}:ShufflePatches", "args": {"factor": 2}}]
    build_plan(copy.deepcopy(config))


def test_user_classes_run_where_training_sees_images(user_module):
    spec = [
        {"name": "RandomHorizontalFlip"},
        {"name": f"{MODULE}:ShufflePatches", "args": {"factor": 4}},
    ]
    transform = BatchTransform(spec, meta(8), "train_transforms")
    transform.reseed(3)
    mean, std = (
        torch.tensor(IMAGENET[0]).view(1, 3, 1, 1),
        torch.tensor(IMAGENET[1]).view(1, 3, 1, 1),
    )
    images = (pixels(6, 8) - mean) / std
    out = transform(images)
    assert out.shape == images.shape and not torch.allclose(out, images)
    # the strips are permuted, not changed: each image keeps its values
    assert torch.allclose(out.flatten(1).sort(1).values, images.flatten(1).sort(1).values)


def test_a_user_class_named_like_torchvisions_is_the_users(user_module):
    # not taken for torchvision's Normalize (whose statistics must be the dataset's)
    transform = BatchTransform([{"name": f"{MODULE}:Normalize"}], meta(8), "train_transforms")
    assert not transform.identity
    images = pixels(2, 8)
    assert torch.allclose(transform(images), images, atol=1e-6)


# --- compose_to_spec: round trips ---------------------------------------------------------------


def test_none_is_none():
    assert compose_to_spec(None) is None


@pytest.mark.parametrize("T", [v1, v2], ids=["v1", "v2"])
def test_deterministic_pipelines_give_the_same_output(T):
    compose = T.Compose(
        [
            T.Resize(36, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(32),
            T.Pad([1, 2], padding_mode="reflect"),
            T.Grayscale(3),
            T.Normalize(*IMAGENET),
        ]
    )
    spec = compose_to_spec(compose)
    assert spec[0] == {
        "name": "Resize",
        "args": {"size": 36 if T is v1 else [36], "interpolation": "bicubic"},
    }
    assert spec[-1] == {"name": "Normalize", "args": {"mean": IMAGENET[0], "std": IMAGENET[1]}}
    images = pixels()
    assert torch.allclose(
        outputs(build_transforms(spec), images), outputs(compose, images), atol=1e-5
    )
    yaml.safe_dump(spec)  # plain data: it goes into a config file


def test_random_v2_pipelines_give_the_same_draws_and_args():
    compose = v2.Compose(
        [
            v2.RandomResizedCrop(32, scale=(0.5, 1.0), ratio=(0.9, 1.1)),
            v2.RandomCrop(32, padding=[1, 2]),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4)], p=0.8),
            v2.RandomErasing(p=0.3, scale=(0.02, 0.2)),
        ]
    )
    spec = compose_to_spec(compose)
    assert spec == [
        {
            "name": "RandomResizedCrop",
            "args": {"size": [32, 32], "scale": [0.5, 1.0], "ratio": [0.9, 1.1]},
        },
        {"name": "RandomCrop", "args": {"size": [32, 32], "padding": [1, 2, 1, 2]}},
        {"name": "RandomHorizontalFlip"},
        {
            "name": "RandomApply",
            "args": {
                "transforms": [
                    {
                        "name": "ColorJitter",
                        "args": {
                            "brightness": [0.6, 1.4],
                            "contrast": [0.6, 1.4],
                            "saturation": [0.6, 1.4],
                        },
                    }
                ],
                "p": 0.8,
            },
        },
        {"name": "RandomErasing", "args": {"p": 0.3, "scale": [0.02, 0.2], "value": [0.0]}},
    ]
    images = pixels(8)
    assert torch.equal(outputs(build_transforms(spec), images), outputs(compose, images))


def test_random_v1_pipelines_keep_their_args():
    compose = v1.Compose(
        [
            v1.RandomCrop(32, padding=4),
            v1.RandomHorizontalFlip(0.3),
            v1.RandomRotation(15, interpolation=v1.InterpolationMode.BILINEAR),
            v1.AutoAugment(v1.AutoAugmentPolicy.CIFAR10),
            v1.RandomChoice([v1.RandomVerticalFlip(1.0), v1.GaussianBlur(3, sigma=(0.1, 1.0))]),
        ]
    )
    assert compose_to_spec(compose) == [
        {"name": "RandomCrop", "args": {"size": [32, 32], "padding": 4}},
        {"name": "RandomHorizontalFlip", "args": {"p": 0.3}},
        {"name": "RandomRotation", "args": {"degrees": [-15.0, 15.0], "interpolation": "bilinear"}},
        {"name": "AutoAugment", "args": {"policy": "cifar10"}},
        {
            "name": "RandomChoice",
            "args": {
                "transforms": [
                    {"name": "RandomVerticalFlip", "args": {"p": 1.0}},
                    {"name": "GaussianBlur", "args": {"kernel_size": [3, 3], "sigma": [0.1, 1.0]}},
                ]
            },
        },
    ]
    built = build_transforms(compose_to_spec(compose)).transforms
    assert built[0].padding == [4, 4, 4, 4] and built[1].p == 0.3
    assert built[3].policy == v2.AutoAugmentPolicy.CIFAR10


def test_the_reference_demo_list_in_python_trains_as_its_yaml():
    # the reference's demo configs (Demo_ARS.yaml, Demo_LRS_Soft_Label.yaml) share this list
    written = yaml.safe_load(REFERENCE_YAML)
    python = v1.Compose(
        [
            v1.RandomResizedCrop(64, scale=(0.08, 1.0)),
            v1.RandomHorizontalFlip(p=0.5),
            v1.ToTensor(),
            v1.Normalize(*IMAGENET),
        ]
    )
    translated = compose_to_spec(python)
    assert [i["name"] for i in translated] == [i["name"] for i in written["custom_train_trans"]]
    runs = []
    for spec in (written["custom_train_trans"], translated):
        transform = BatchTransform(spec, meta(64), "train_transforms")
        transform.reseed(5)
        runs.append(transform(pixels(4, 64)))
    assert torch.equal(*runs)


def test_tensor_statistics_become_plain_lists():
    mean, std = torch.tensor(IMAGENET[0]), torch.tensor(IMAGENET[1])
    spec = compose_to_spec(v1.Compose([v1.Normalize(mean=mean, std=std)]))
    assert spec == [{"name": "Normalize", "args": {"mean": IMAGENET[0], "std": IMAGENET[1]}}]
    assert torch.equal(torch.tensor(spec[0]["args"]["mean"]), mean)


def test_conversions_are_kept_and_nested_composes_flattened():
    compose = v2.Compose(
        [
            v2.ToImage(),
            v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.RandomHorizontalFlip()]),
            v1.ToTensor(),
            v2.PILToTensor(),
        ]
    )
    assert compose_to_spec(compose) == [
        {"name": "ToImage"},
        {"name": "ToDtype", "args": {"dtype": "float32", "scale": True}},
        {"name": "RandomHorizontalFlip"},
        {"name": "ToTensor"},
        {"name": "PILToTensor"},
    ]
    assert compose_to_spec([v2.RandomHorizontalFlip(0.2)]) == compose_to_spec(
        v2.RandomHorizontalFlip(0.2)
    )


def test_user_classes_translate_to_their_import_path(user_module):
    compose = v2.Compose(
        [
            user_module.Brighten(1.5, clamp=False),
            user_module.ShufflePatches(4),
            v2.RandomVerticalFlip(),
        ]
    )
    spec = compose_to_spec(compose)
    assert spec == [
        {"name": f"{MODULE}:Brighten", "args": {"gain": 1.5, "clamp": False}},
        {"name": f"{MODULE}:ShufflePatches", "args": {"factor": 4}},
        {"name": "RandomVerticalFlip"},
    ]
    images = pixels(6)
    assert torch.equal(outputs(build_transforms(spec), images), outputs(compose, images))


def every_torchvision_transform(T) -> list:
    I = T.InterpolationMode  # noqa: E741
    items = [
        T.ToTensor(),
        T.PILToTensor(),
        T.ConvertImageDtype(torch.float64),
        T.Normalize([0.5], [0.2]),
        T.Resize(36),
        T.Resize((30, 34), interpolation=I.NEAREST, antialias=False),
        T.CenterCrop(30),
        T.Pad(2),
        T.Pad([1, 2, 3, 4], fill=1, padding_mode="constant"),
        T.RandomCrop(32, padding=4),
        T.RandomCrop((28, 30), padding=[1, 2], pad_if_needed=True, fill=0.5),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(0.3),
        T.RandomResizedCrop(32, scale=(0.5, 1.0), ratio=(0.9, 1.1), interpolation=I.BICUBIC),
        T.ColorJitter(0.4, 0.4, 0.4, 0.1),
        T.ColorJitter(brightness=(0.5, 1.2)),
        T.RandomRotation(15, expand=True),
        T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
        T.RandomGrayscale(0.2),
        T.Grayscale(3),
        T.RandomErasing(p=0.3, scale=(0.02, 0.2), value=0.5),
        T.GaussianBlur(3, sigma=(0.1, 1.0)),
        T.RandomInvert(0.3),
        T.RandomPosterize(4, 0.3),
        T.RandomSolarize(0.5, 0.3),
        T.RandomAdjustSharpness(2, 0.3),
        T.RandomAutocontrast(0.3),
        T.RandomEqualize(0.3),
        T.AutoAugment(T.AutoAugmentPolicy.SVHN),
        T.RandAugment(3, 5),
        T.TrivialAugmentWide(15),
        T.AugMix(2, 2),
        T.RandomPerspective(0.3, 0.4),
        T.ElasticTransform(30.0),
        T.RandomApply([T.ColorJitter(0.4)], p=0.8),
        T.RandomOrder([T.RandomHorizontalFlip()]),
    ]
    if T is v2:
        items += [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.ToPureTensor(),
            v2.RGB(),
            v2.RandomZoomOut(fill=0.5, side_range=(1.0, 2.0)),
            v2.GaussianNoise(sigma=0.2),
            v2.RandomPhotometricDistort(p=0.4),
            v2.JPEG((50, 90)),
            v2.ScaleJitter((32, 32)),
        ]
    return items


@pytest.mark.parametrize("T", [v1, v2], ids=["v1", "v2"])
def test_every_common_torchvision_transform_translates_faithfully(T):
    # compose_to_spec rebuilds each item from its list entry and compares every stored
    # attribute, so passing here means each translates to the same transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = every_torchvision_transform(T)
        spec = compose_to_spec(T.Compose(items))
        built = build_transforms(yaml.safe_load(yaml.safe_dump(spec))).transforms
    assert [type(b).__name__ for b in built] == [type(t).__name__ for t in items]


# --- compose_to_spec: what cannot be translated -------------------------------------------------


def shift(img):
    return img + 1


class LocalKeeper:  # importable, but keeps its argument privately
    def __init__(self, k):
        self._k = k

    def __call__(self, img):
        return img


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda img: img, r"cannot translate a lambda"),
        (shift, r"cannot translate a plain function \(shift\)"),
        (functools.partial(shift), r"cannot translate a functools.partial"),
        (v1.Lambda(shift), r"cannot translate transforms.Lambda"),
        (v2.Lambda(shift), r"cannot translate transforms.Lambda"),
        (v2.RandomHorizontalFlip, r"the class RandomHorizontalFlip itself, not an instance"),
        (LocalKeeper(3), r"LocalKeeper cannot be recovered: it keeps no attribute 'k'"),
        (v2.RandomIoUCrop(), r"\{name: RandomIoUCrop, args: \{...\}\}"),
    ],
)
def test_untranslatable_items_are_errors_that_say_how_to_name_them(transform, message):
    with pytest.raises(ConfigError, match=message) as err:
        compose_to_spec(v2.Compose([v2.RandomHorizontalFlip(), transform]), "custom_train_trans")
    assert str(err.value).startswith("custom_train_trans[1]")
    assert "{name:" in str(err.value)


def test_user_classes_that_cannot_be_translated_say_why(user_module):
    with pytest.raises(ConfigError, match=rf"keeps no attribute 'k'.*\{{name: '{MODULE}:Hidden'"):
        compose_to_spec([user_module.Hidden(2)])
    with pytest.raises(ConfigError, match=r"Star takes \*sizes, which cannot be recovered"):
        compose_to_spec([user_module.Star(1, 2)])

    class Local:
        def __call__(self, img):
            return img

    with pytest.raises(ConfigError, match=r"defined in a function, where the workflow's jobs"):
        compose_to_spec([Local()])
    Local.__qualname__, Local.__module__ = "Local", "__main__"
    with pytest.raises(ConfigError, match=r"Local is defined in __main__"):
        compose_to_spec([Local()])


def test_args_that_a_config_cannot_hold_are_errors():
    from torchvision import tv_tensors

    crop = v2.RandomCrop(32, padding=4, fill={tv_tensors.Image: 0, "others": 0})
    with pytest.raises(ConfigError, match=r"fill: .*keys that are not strings"):
        compose_to_spec([crop])
    with pytest.raises(
        ConfigError, match=r"\[0\] \(RandomApply\)\.transforms\[0\]: cannot translate"
    ):
        compose_to_spec([v2.RandomApply([v2.Lambda(shift)])])


# --- through the train stage --------------------------------------------------------------------


def test_the_train_stage_runs_a_translated_pipeline_with_a_user_class(
    user_module, both, tmp_path, one_thread
):
    from helpers import TREE_MEAN, TREE_STD, run_train_stage, tiny_protocol

    compose = v1.Compose(
        [
            v1.RandomCrop(8, padding=2),
            user_module.ShufflePatches(2),
            v1.ToTensor(),
            v1.Normalize(TREE_MEAN, TREE_STD),
        ]
    )
    spec = compose_to_spec(compose, "custom_train_trans")
    assert spec[1] == {"name": f"{MODULE}:ShufflePatches"}
    fixed = {"batch_size": 5, "test_interval": 1, "lr": 0.05, "lr_grid": None}
    protocol = tiny_protocol("fixed", train_transforms=spec, **fixed)
    runs = [
        run_train_stage(*both["cached"][:2], tmp_path / f"{i}.json", protocol, workers=0)
        for i in range(2)
    ]
    assert runs[0]["runs"][0]["curve"] == runs[1]["runs"][0]["curve"]  # seeded draws
    assert runs[0]["protocol"]["train_transforms"] == spec  # recorded as written
    plain = tiny_protocol("fixed", **fixed)
    without = run_train_stage(*both["cached"][:2], tmp_path / "p.json", plain, workers=0)
    assert without["runs"][0]["curve"] != runs[0]["runs"][0]["curve"]
