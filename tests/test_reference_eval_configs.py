"""Configs shaped like the reference's evaluation configs (its `eval` branch: DC, DM, MTT,
SRe2L, RDED, G-VBSM… on CIFAR, TinyImageNet and the ImageNet sets), translated by
`ddrank import-config` and planned, against fake dataset roots in the real on-disk
formats at their `data_path`. Planning only: nothing trains.

The configs are written here, in the reference's format, one per shape: hard labels, soft
labels in mode S and M, ARS, a teacher ensemble, eval_full_data true and false, ImageNet
subsets and TinyImageNet. Also what the plan decides for them: the real-hard recipe and
whose it is, the batch it trains at, where each teacher comes from.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from format_writers import write_cached_weights, write_reference_root
from helpers import lrs_hard_score

from ddrank_steps.api.ddrank_command import main as ddrank
from ddrank_steps.api.workflow_run import checked_plan
from ddrank_steps.errors import ConfigError

DSA = {"scale": 1.2, "rotate": 15.0, "flip": 0.5, "brightness": 1.0, "saturation": 2.0}
DSA |= {"contrast": 0.5, "crop": 0.125, "cutout": 0.5}
IMAGENET_NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CIFAR_NORM = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}

# the keys every evaluation config of the reference writes
COMMON = {
    "use_zca": False,
    "num_eval": 5,
    "num_workers": 4,
    "device": "cuda",
    "default_lr": 0.01,
    "syn_batch_size": 256,
    "real_batch_size": 256,
    "custom_train_trans": None,
    "custom_val_trans": None,
}
HARD = {
    **COMMON,
    "use_torchvision": False,
    "optimizer": "sgd",
    "lr_scheduler": "step",
    "weight_decay": 0.0005,
    "momentum": 0.9,
    "num_epochs": 1000,
}
SOFT = {
    **COMMON,
    "stu_use_torchvision": False,
    "tea_use_torchvision": False,
    "teacher_dir": "./teacher_models",
    "data_aug_func": "cutmix",
    "aug_params": {"beta": 1.0},
    "soft_label_mode": "M",
    "soft_label_criterion": "kl",
    "loss_fn_kwargs": {"temperature": 20.0, "scale_loss": False},
    "optimizer": "adamw",
    "lr_scheduler": "cosine",
    "weight_decay": 0.01,
    "num_epochs": 300,
    "use_aug_for_hard": False,
    "random_data_format": "image",
}
TINY = {"dataset": "TinyImageNet", "real_data_path": "./dataset/tiny-imagenet-200/"}
TINY |= {"im_size": [64, 64]}
CIFAR10 = {"dataset": "CIFAR10", "real_data_path": "./datasets/", "im_size": [32, 32]}
CIFAR100 = {**CIFAR10, "dataset": "CIFAR100"}
IMAGENET = {"dataset": "ImageNet1K", "real_data_path": "./imagenet/", "im_size": [224, 224]}
NETTE = {"dataset": "ImageNette", "real_data_path": "./imagenet/", "im_size": [128, 128]}
WOOF = {**NETTE, "dataset": "ImageWoof"}

CONFIGS = {
    # hard labels (DC, DM, DSA, MTT): eval_full_data unset (false) with no known accuracy
    # trains real-hard, with a note
    "DC-TinyImageNet": ("lrs_hard", {**HARD, **TINY, "ipc": 1, "model_name": "ConvNet-4"}),
    "DM-CIFAR10-full": (
        "lrs_hard",
        {**HARD, **CIFAR10, "ipc": 10, "model_name": "ConvNet-3", "eval_full_data": True}
        | {"data_aug_func": "dsa", "aug_params": DSA},
    ),
    "MTT-ImageNette": (
        "lrs_hard",
        {**HARD, **NETTE, "ipc": 10, "model_name": "ConvNet-5", "dist": True}
        | {"data_aug_func": "dsa", "aug_params": DSA, "random_data_format": "tensor"},
    ),
    "MTT-ImageWoof": ("lrs_hard", {**HARD, **WOOF, "ipc": 1, "model_name": "ConvNet-5"}),
    # soft labels, mode M (SRe2L, RDED on CIFAR and TinyImageNet)
    "SRe2L-CIFAR100": (
        "lrs_soft",
        {**SOFT, **CIFAR100, "ipc": 10, "model_name": "ResNet-18-BN"}
        | {"stu_use_torchvision": True, "tea_use_torchvision": True}
        | {"data_aug_func": "mixup", "aug_params": {"lambda": 0.8}}
        | {"custom_train_trans": [{"name": "RandomCrop", "args": {"size": 32, "padding": 4}}]}
        | {"random_data_path": "./random_data/SRe2L/CIFAR100/IPC10/"},
    ),
    "RDED-TinyImageNet": (
        "lrs_soft",
        {**SOFT, **TINY, "ipc": 10, "model_name": "ConvNet-4-BN", "syn_batch_size": 50}
        | {
            "custom_val_trans": [
                {"name": "Resize", "args": {"size": 72, "antialias": True}},
                {"name": "CenterCrop", "args": {"size": 64}},
                {"name": "ToTensor"},
                {"name": "Normalize", "args": IMAGENET_NORM},
            ]
        },
    ),
    # soft labels, mode S: teacher logits stored once per image
    "DATM-CIFAR10-S": (
        "lrs_soft",
        {**SOFT, **CIFAR10, "ipc": 10, "model_name": "ConvNet-3", "soft_label_mode": "S"}
        | {"eval_full_data": True},
    ),
    # ARS (the reference's only ARS path that runs: soft, mode M, images, cosine)
    "ARS-CIFAR10": (
        "ars",
        {**SOFT, **CIFAR10, "ipc": 10, "model_name": "ConvNet-3-BN", "batch_size": 256}
        | {"label_type": "soft", "teacher_model_names": ["ConvNet-3-BN"]}
        | {
            "custom_train_trans": [
                {"name": "RandomResizedCrop", "args": {"size": 32, "scale": [0.5, 1.0]}},
                {"name": "RandomHorizontalFlip", "args": {"p": 0.5}},
                {"name": "ToTensor"},
                {"name": "Normalize", "args": CIFAR_NORM},
            ]
        },
    ),
    # ImageNet-1K with eval_full_data false: the reference's known accuracy
    "SRe2L-ImageNet1K": (
        "lrs_soft",
        {**SOFT, **IMAGENET, "ipc": 10, "model_name": "ResNet-18-BN", "dist": True}
        | {"stu_use_torchvision": True, "tea_use_torchvision": True, "eval_full_data": False}
        | {
            "custom_train_trans": [
                {"name": "RandomResizedCrop", "args": {"size": 224, "scale": [0.08, 1.0]}},
                {"name": "ToTensor"},
                {"name": "Normalize", "args": IMAGENET_NORM},
            ],
            "custom_val_trans": [
                {"name": "Resize", "args": {"size": 256}},
                {"name": "CenterCrop", "args": {"size": 224}},
                {"name": "ToTensor"},
                {"name": "Normalize", "args": IMAGENET_NORM},
            ],
        },
    ),
    # DATM on TinyImageNet: ZCA, mode S with SCE, data_path the folder that holds
    # tiny-imagenet-200/ beside the other datasets' folders
    "DATM-TinyImageNet-zca": (
        "lrs_soft",
        {**SOFT, **TINY, "real_data_path": "./dataset/", "ipc": 1, "model_name": "ConvNet-4"}
        | {"use_zca": True, "soft_label_mode": "S", "soft_label_criterion": "sce"}
        | {"data_aug_func": "dsa", "aug_params": DSA, "use_aug_for_hard": True}
        | {"optimizer": "sgd", "lr_scheduler": "step", "step_size": 500, "momentum": 0.9}
        | {"eval_full_data": True, "random_data_format": "tensor"},
    ),
    # SRe2L on TinyImageNet with a torchvision v2 transform after Normalize, no momentum
    "SRe2L-TinyImageNet-noise": (
        "lrs_soft",
        {**SOFT, **TINY, "real_data_path": "./datasets/", "ipc": 50}
        | {"model_name": "ResNet-18-BN", "stu_use_torchvision": True, "eval_full_data": False}
        | {"tea_use_torchvision": True, "teacher_model_names": ["ResNet-18-BN"]}
        | {
            "custom_train_trans": [
                {"name": "RandomResizedCrop", "args": {"size": 64, "scale": [0.08, 1.0]}},
                {"name": "ToTensor"},
                {"name": "Normalize", "args": IMAGENET_NORM},
                {"name": "GaussianNoise", "args": {"mean": 0.0, "sigma": 0.1, "clip": False}},
            ]
        },
    ),
}
# G-VBSM on ImageNet-1K: a teacher ensemble of torchvision names, none under teacher_dir
ENSEMBLE = ["ResNet-18-BN", "mobilenet_v2", "shufflenet_v2_x0_5"]
GVBSM = {**CONFIGS["SRe2L-ImageNet1K"][1], "teacher_model_names": ENSEMBLE}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Path:
    """A folder with every dataset at the configs' data_path, in its real on-disk format."""
    base = tmp_path_factory.mktemp("eval_configs")
    for _, ref in CONFIGS.values():
        write_reference_root(ref["dataset"], base / ref["real_data_path"])
    return base


@pytest.fixture
def here(roots, monkeypatch, tmp_path) -> Path:
    """Run from the roots' folder (the configs' paths are relative), with an empty
    torch hub cache."""
    monkeypatch.chdir(roots)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return roots


def import_config(here: Path, name: str, metric: str, ref: dict, capsys) -> tuple[int, str]:
    source = here / "ref" / f"{name}.yaml"
    source.parent.mkdir(exist_ok=True)
    source.write_text(yaml.safe_dump(ref))
    out = here / "out" / f"{name}.yaml"
    rc = ddrank(["import-config", str(source), "--metric", metric, "-o", str(out)])
    return rc, capsys.readouterr().err


def planned(here: Path, name: str):
    config = yaml.safe_load((here / "out" / f"{name}.yaml").read_text())
    return config, checked_plan(config, name)[1]


@pytest.mark.parametrize("name", CONFIGS)
def test_each_evaluation_config_shape_imports_and_plans(here, name, capsys):
    metric, ref = CONFIGS[name]
    rc, err = import_config(here, name, metric, copy.deepcopy(ref), capsys)
    assert rc == 0, err
    config, plan = planned(here, name)
    score = plan.scores[(name, metric)]
    if metric != "ars" and score["settings"]["eval_full_data"]:
        # the reference trains real-hard at real_batch_size, whatever its table says
        assert config["real_batch_size"] == 256
        real = score["protocols"]["real-hard"]
        assert real["batch_size"] == 256
        recipe = score["real_recipe"]
        assert recipe["entry"].endswith(ref["model_name"]) and recipe["source"]
    if metric == "lrs_soft" or metric == "ars":
        assert "teacher " in err  # where each teacher comes from, said


def test_recipes_say_whose_they_are(here, capsys):
    """The reference's own recipe is marked as such; ddrank's own choice is said."""
    import_config(here, "DM-CIFAR10-full", *CONFIGS["DM-CIFAR10-full"], capsys)
    _, plan = planned(here, "DM-CIFAR10-full")
    recipe = plan.scores[("DM-CIFAR10-full", "lrs_hard")]["real_recipe"]
    assert recipe["entry"] == "CIFAR10-ConvNet-3" and recipe["reference"] is True
    import_config(here, "DC-TinyImageNet", *CONFIGS["DC-TinyImageNet"], capsys)
    _, plan = planned(here, "DC-TinyImageNet")
    recipe = plan.scores[("DC-TinyImageNet", "lrs_hard")]["real_recipe"]
    assert recipe["entry"] == "TinyImageNet-ConvNet-4" and recipe["reference"] is False
    assert "ddrank's own choice" in recipe["source"]


def test_a_trained_teacher_is_said_in_the_output_and_the_written_config(here, capsys):
    rc, err = import_config(here, "SRe2L-CIFAR100", *CONFIGS["SRe2L-CIFAR100"], capsys)
    assert rc == 0, err
    said = "teacher ResNet-18-BN for CIFAR100: no checkpoint under teacher_dir"
    assert said in err and "recipe 'CIFAR100-ResNet-18-BN'" in err
    assert said in (here / "out" / "SRe2L-CIFAR100.yaml").read_text()


def test_a_teacher_ensemble_uses_pretrained_weights_from_the_local_cache(here, capsys):
    # the weights of every member, where torch hub caches them
    write_cached_weights(Path(os.environ["TORCH_HOME"]), ("resnet18", *ENSEMBLE[1:]))
    rc, err = import_config(here, "G-VBSM", "lrs_soft", copy.deepcopy(GVBSM), capsys)
    assert rc == 0, err
    _, plan = planned(here, "G-VBSM")
    teachers = plan.scores[("G-VBSM", "lrs_soft")]["protocols"]["syn-any"]["teachers"]
    assert [t["source"] for t in teachers] == ["pretrained"] * 3
    assert teachers[0]["model"] == "torchvision:resnet18"
    assert "pretrained weights" in err


def test_an_ars_ensemble_of_four_without_weight_decay_plans_and_says_so(here, capsys):
    """G-VBSM's ARS shape: four torchvision teachers, one batch_size, LRS-only keys, and
    no weight_decay (the reference reads None there and its AdamW raises)."""
    write_cached_weights(
        Path(os.environ["TORCH_HOME"]), ("resnet18", *ENSEMBLE[1:], "efficientnet_b0")
    )
    ref = {k: v for k, v in GVBSM.items() if k not in ("weight_decay", "syn_batch_size")}
    ref = {k: v for k, v in ref.items() if k != "real_batch_size"}
    ref |= {"label_type": "soft", "batch_size": 512, "eval_full_data": False}
    ref["teacher_model_names"] = [*ENSEMBLE, "efficientnet_b0"]
    rc, err = import_config(here, "G-VBSM-ARS", "ars", ref, capsys)
    assert rc == 0, err
    assert "eval_full_data: not read by AugmentationRobustScore" in err
    assert "weight_decay not set: the reference reads None" in err
    config, plan = planned(here, "G-VBSM-ARS")
    protocol = config["protocols"]["ars"]
    assert protocol["weight_decay"] == 0.0005 and protocol["batch_size"] == 512
    teachers = plan.scores[("G-VBSM-ARS", "ars")]["protocols"]["syn-aug"]["teachers"]
    assert [t["source"] for t in teachers] == ["pretrained"] * 4


def test_a_soft_config_without_teachers_uses_the_student_model_and_says_so(here, capsys):
    """The reference fails loading teachers from None; ddrank's is the student's model."""
    ref = {k: v for k, v in CONFIGS["SRe2L-CIFAR100"][1].items() if k != "teacher_model_names"}
    rc, err = import_config(here, "no-teachers", "lrs_soft", ref, capsys)
    assert rc == 0, err
    assert "teacher_model_names not set" in err and "student's model ResNet-18-BN" in err
    _, plan = planned(here, "no-teachers")
    teachers = plan.scores[("no-teachers", "lrs_soft")]["protocols"]["syn-any"]["teachers"]
    assert [t["model"] for t in teachers] == ["ResNet-18-BN"]


def test_a_v2_transform_after_normalize_is_kept(here, capsys):
    import_config(here, "noise", *CONFIGS["SRe2L-TinyImageNet-noise"], capsys)
    config, _ = planned(here, "noise")
    last = config["protocols"]["lrs_soft"]["train_transforms"][-1]
    assert last == {"name": "GaussianNoise", "args": {"mean": 0.0, "sigma": 0.1, "clip": False}}


def test_a_teacher_that_can_be_none_of_them_is_one_error_naming_all_three(here, capsys):
    ref = {**GVBSM, "teacher_model_names": ["mobilenet_v2"]}
    rc, err = import_config(here, "G-VBSM-none", "lrs_soft", ref, capsys)
    assert rc == 2
    assert "teacher_models/ImageNet1K/mobilenet_v2/ckpt_best.pt" in err  # the checkpoint
    assert "hub/checkpoints/mobilenet_v2-" in err  # the weights file
    assert "real-hard recipe 'ImageNet1K-mobilenet_v2'" in err  # the recipe key


def test_an_absolute_path_not_on_this_machine_names_the_key(here, capsys):
    ref = {**CONFIGS["MTT-ImageNette"][1], "real_data_path": "/home/someone/datasets/imagenet/"}
    rc, err = import_config(here, "abs", "lrs_hard", ref, capsys)
    assert rc == 2 and "real_data_path: /home/someone/datasets/imagenet does not exist" in err
    assert "edit real_data_path" in err


def test_a_test_crop_is_fitted_like_the_train_crop(here, capsys):
    """A 64-px val crop beside 224-px training: fitted (Resize in proportion), noted."""
    ref = copy.deepcopy(CONFIGS["SRe2L-ImageNet1K"][1])
    ref["custom_val_trans"][0]["args"]["size"] = 72
    ref["custom_val_trans"][1]["args"]["size"] = 64
    rc, err = import_config(here, "fit", "lrs_soft", ref, capsys)
    assert rc == 0, err
    config, _ = planned(here, "fit")
    test = config["protocols"]["lrs_soft"]["test_transforms"]
    assert test[0]["args"]["size"] == 252 and test[1]["args"]["size"] == 224
    assert "custom_val_trans[1] CenterCrop size 64 -> 224" in err


def test_transforms_that_change_the_size_are_refused_at_plan_time(here, capsys):
    import_config(here, "DM-CIFAR10-full", *CONFIGS["DM-CIFAR10-full"], capsys)
    config, _ = planned(here, "DM-CIFAR10-full")
    config["protocols"]["lrs_hard"]["test_transforms"] = [
        {"name": "CenterCrop", "args": {"size": 16}}
    ]
    with pytest.raises(ConfigError, match=r"test_transforms: turns a 32x32 image .* into 16x16"):
        checked_plan(config, "edited")


def test_the_score_file_and_the_leaderboard_name_the_recipe(tmp_path):
    """Whose recipe trained real-hard travels from the plan's score spec to the leaderboard."""
    import json

    from ddrank_steps.stages import leaderboard

    term = {"acc": 0.5, "lr": 0.1, "epoch": 1, "run": "r"}
    terms = {name: term for name in ("real-hard", "syn-hard", "syn-any", "rdm-any")}
    recipe = {"entry": "TinyImageNet-ConvNet-4", "source": "ddrank's own choice"}
    score = lrs_hard_score(terms, real_recipe={**recipe, "reference": False})
    path = tmp_path / "s.json"
    path.write_text(json.dumps(score))
    table = leaderboard.rows([str(path)])
    assert table.loc[0, "lrs_hard_real_recipe"] == "TinyImageNet-ConvNet-4: ddrank's own choice"
    assert not table.loc[0, "lrs_hard_real_recipe_is_reference"]
