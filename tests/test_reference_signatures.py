"""The evaluator classes take DD-Ranking's parameters exactly: names, order and defaults of
each constructor and `compute_metrics`, as recorded here from ddranking 0.2.0's code
(`ddranking/metrics/*.py` at b8b09664; GeneralEvaluator, whose code cannot run, from
the reference's behaviour notes, §1.4, on its module's order). The classes
build their signatures from `reference_defaults.yaml`; this table is a second, independent
record, so neither can drift. ddrank's own parameters come after, keyword-only.

Also: `Config` as the reference's where a script can tell, and the CSV the API writes
without `save_path`. Nothing here runs the workflow.
"""

from __future__ import annotations

import inspect

import pytest

from ddrank_steps.api import evaluator_base
from ddrank_steps.api.config import Config
from ddrank_steps.metrics import (
    AugmentationRobustScore,
    GeneralEvaluator,
    LabelRobustScoreHard,
    LabelRobustScoreSoft,
)

HARD = [
    ("config", None),
    ("dataset", "CIFAR10"),
    ("real_data_path", "./dataset/"),
    ("ipc", 10),
    ("model_name", "ConvNet-3"),
    ("data_aug_func", "cutmix"),
    ("aug_params", {"cutmix_p": 1.0}),
    ("optimizer", "sgd"),
    ("lr_scheduler", "step"),
    ("step_size", None),
    ("weight_decay", 0.0005),
    ("momentum", 0.9),
    ("use_zca", False),
    ("num_eval", 5),
    ("im_size", (32, 32)),
    ("num_epochs", 300),
    ("real_batch_size", 256),
    ("syn_batch_size", 256),
    ("use_torchvision", False),
    ("num_workers", 4),
    ("save_path", None),
    ("custom_train_trans", None),
    ("custom_val_trans", None),
    ("device", "cuda"),
    ("dist", False),
    ("random_data_format", "tensor"),
    ("random_data_path", None),
    ("eval_full_data", False),
]
SOFT = [
    ("config", None),
    ("dataset", "CIFAR10"),
    ("real_data_path", "./dataset/"),
    ("ipc", 10),
    ("model_name", "ConvNet-3"),
    ("soft_label_criterion", "kl"),
    ("loss_fn_kwargs", None),
    ("data_aug_func", "cutmix"),
    ("aug_params", {"beta": 1.0}),
    ("soft_label_mode", "S"),
    ("optimizer", "sgd"),
    ("lr_scheduler", "step"),
    ("step_size", None),
    ("weight_decay", 0.0005),
    ("momentum", 0.9),
    ("num_eval", 5),
    ("im_size", (32, 32)),
    ("num_epochs", 300),
    ("use_zca", False),
    ("use_aug_for_hard", False),
    ("random_data_format", "tensors"),
    ("random_data_path", None),
    ("real_batch_size", 256),
    ("syn_batch_size", 256),
    ("save_path", None),
    ("eval_full_data", False),
    ("stu_use_torchvision", False),
    ("tea_use_torchvision", False),
    ("num_workers", 4),
    ("teacher_dir", "./teacher_models"),
    ("teacher_model_names", None),
    ("custom_train_trans", None),
    ("custom_val_trans", None),
    ("device", "cuda"),
    ("dist", False),
]
ARS = [
    ("config", None),
    ("dataset", "CIFAR10"),
    ("real_data_path", "./dataset/"),
    ("ipc", 10),
    ("model_name", "ConvNet-3"),
    ("data_aug_func", "cutmix"),
    ("aug_params", {"beta": 1.0}),
    ("label_type", "soft"),
    ("soft_label_mode", "S"),
    ("soft_label_criterion", "kl"),
    ("optimizer", "sgd"),
    ("lr_scheduler", "step"),
    ("loss_fn_kwargs", None),
    ("step_size", None),
    ("weight_decay", 0.0005),
    ("momentum", 0.9),
    ("num_eval", 5),
    ("im_size", (32, 32)),
    ("num_epochs", 300),
    ("use_zca", False),
    ("batch_size", 256),
    ("save_path", None),
    ("stu_use_torchvision", False),
    ("tea_use_torchvision", False),
    ("num_workers", 4),
    ("teacher_dir", "./teacher_models"),
    ("teacher_model_names", None),
    ("random_data_path", None),
    ("random_data_format", "image"),
    ("custom_train_trans", None),
    ("custom_val_trans", None),
    ("device", "cuda"),
    ("dist", False),
]
GENERAL = [
    ("config", None),
    ("dataset", "CIFAR10"),
    ("real_data_path", "./dataset"),
    ("ipc", 10),
    ("model_name", "ConvNet-3"),
    ("use_soft_label", False),
    ("optimizer", "adamw"),
    ("lr_scheduler", "cosine"),
    ("data_aug_func", "dsa"),
    ("aug_params", None),
    ("soft_label_mode", "M"),
    ("soft_label_criterion", "kl"),
    ("num_eval", 5),
    ("im_size", (32, 32)),
    ("num_epochs", 300),
    ("batch_size", 256),
    ("weight_decay", 0.01),
    ("momentum", 0.9),
    ("use_zca", False),
    ("temperature", 1.0),
    ("stu_use_torchvision", False),
    ("tea_use_torchvision", False),
    ("teacher_dir", "./teacher_models"),
    ("custom_train_trans", None),
    ("custom_val_trans", None),
    ("num_workers", 4),
    ("save_path", None),
    ("dist", False),
    ("device", "cuda"),
]
CONSTRUCTORS = {
    LabelRobustScoreHard: HARD,
    LabelRobustScoreSoft: SOFT,
    AugmentationRobustScore: ARS,
    GeneralEvaluator: GENERAL,
}
_SET = [("image_tensor", None), ("image_path", None)]
COMPUTE_METRICS = {
    LabelRobustScoreHard: [*_SET, ("hard_labels", None), ("syn_lr", None), ("lrs_lambda", 0.5)],
    LabelRobustScoreSoft: [*_SET, ("soft_labels", None), ("syn_lr", None), ("lrs_lambda", 0.5)],
    AugmentationRobustScore: [*_SET, ("soft_labels", None), ("syn_lr", None), ("ars_lambda", 0.5)],
    GeneralEvaluator: [*_SET, ("labels", None), ("syn_lr", None)],
}
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
EXTRA_KINDS = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)


def recorded(params) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in params if p.kind == POSITIONAL]


@pytest.mark.parametrize("cls", list(CONSTRUCTORS), ids=lambda c: c.__name__)
def test_constructor_takes_the_references_parameters_in_its_order(cls):
    params = list(inspect.signature(cls).parameters.values())
    reference = CONSTRUCTORS[cls]
    assert recorded(params) == reference
    # ddrank's own parameters follow, keyword-only: a positional call means the reference's
    assert [p.name for p in params[: len(reference)]] == [name for name, _ in reference]
    assert all(p.kind in EXTRA_KINDS for p in params[len(reference) :])
    own = [p.name for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    assert own == list(evaluator_base.OWN_KEYWORDS)


@pytest.mark.parametrize("cls", list(COMPUTE_METRICS), ids=lambda c: c.__name__)
def test_compute_metrics_takes_the_references_parameters_in_its_order(cls):
    params = list(inspect.signature(cls.compute_metrics).parameters.values())[1:]  # self
    assert recorded(params) == COMPUTE_METRICS[cls]
    assert len(params) == len(COMPUTE_METRICS[cls])


def test_positional_arguments_are_the_references():
    evaluator = LabelRobustScoreHard(None, "CIFAR100", "./data/", 50, device="cpu")
    assert (evaluator.settings["dataset"], evaluator.settings["ipc"]) == ("CIFAR100", 50)
    assert evaluator.settings["real_data_path"] == "./data/"
    assert evaluator.given_keys == {"dataset", "real_data_path", "ipc", "device"}
    with pytest.raises(TypeError):
        LabelRobustScoreHard(None, "CIFAR10", "./d/", 10, "ConvNet-3", *[None] * 30)


def test_defaults_not_passed_are_not_given():
    """A default of the signature is the class's, not a key the user set: GeneralEvaluator
    with nothing given trains by the reference's defaults."""
    evaluator = GeneralEvaluator(device="cpu")
    assert evaluator.given_keys == {"device"}
    s = evaluator.settings
    assert (s["optimizer"], s["lr_scheduler"], s["weight_decay"]) == ("adamw", "cosine", 0.01)
    assert (s["data_aug_func"], s["soft_label_mode"], s["batch_size"]) == ("dsa", "M", 256)
    assert s["use_soft_label"] is False


def test_ars_defaults_are_cifar10_convnet3_at_32px():
    s = AugmentationRobustScore(device="cpu").settings
    assert (s["dataset"], s["model_name"], s["im_size"]) == ("CIFAR10", "ConvNet-3", (32, 32))


def test_a_config_and_keywords_beside_it():
    config = Config({"dataset": "CIFAR10", "ipc": 1, "model_name": "ConvNet-3"})
    evaluator = LabelRobustScoreHard(config, ipc=2, device="cpu")
    assert evaluator.settings["ipc"] == 2  # keywords beside a config win, as before


# --- Config, as the reference's ---------------------------------------------------------------


def test_config_has_the_references_config_attribute_and_get():
    config = Config({"ipc": 10, "im_size": [32, 32]})
    assert config.config["ipc"] == 10 and config.get("im_size") == (32, 32)
    config.config["ipc"] = 50  # the reference's dict: a change through it is a change
    assert config["ipc"] == 50 and config.get("missing", 3) == 3


def test_config_get_returns_transforms_as_the_reference_does():
    from torchvision import transforms

    given = transforms.Compose([transforms.RandomCrop(32, padding=4)])
    assert Config({"custom_train_trans": given}).get("custom_train_trans") is given
    yaml_list = [
        {"name": "RandomResizedCrop", "args": {"size": 64, "scale": [0.08, 1.0]}},
        {"name": "RandomHorizontalFlip", "args": [0.5]},
        {"name": "ToTensor"},
    ]
    built = Config({"custom_val_trans": yaml_list}).get("custom_val_trans")
    assert isinstance(built, transforms.Compose)
    kinds = [type(t).__name__ for t in built.transforms]
    assert kinds == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor"]
    assert built.transforms[1].p == 0.5
    assert Config({"custom_val_trans": None}).get("custom_val_trans") is None


def test_a_config_built_from_a_compose_translates_as_its_list():
    from torchvision import transforms

    train = transforms.Compose([transforms.RandomCrop(32, padding=4)])
    keys = {"dataset": "CIFAR10", "ipc": 1, "model_name": "ConvNet-3", "device": "cpu"}
    evaluator = LabelRobustScoreHard(Config({**keys, "custom_train_trans": train}))
    assert evaluator.settings["custom_train_trans"][0]["name"] == "RandomCrop"


# --- what compute_metrics writes and prints ---------------------------------------------------


def test_the_default_save_path_is_the_references(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cls, name in (
        (LabelRobustScoreHard, "obj_scores.csv"),
        (LabelRobustScoreSoft, "obj_scores.csv"),
        (AugmentationRobustScore, "aug_scores.csv"),
        (GeneralEvaluator, "eval_scores.csv"),
    ):
        evaluator = cls(dataset="CIFAR100", model_name="ConvNet-3", ipc=50, device="cpu")
        assert str(evaluator._default_save_path()) == f"results/CIFAR100/ConvNet-3/ipc50/{name}"


def test_the_differences_are_printed_once_per_process(capsys, monkeypatch):
    monkeypatch.setattr(evaluator_base, "_DIFFERENCES_SHOWN", [])
    evaluator_base._print_differences()
    evaluator_base._print_differences()
    out = capsys.readouterr().out
    assert out.count("differs from ddranking on purpose") == 1
    assert "Mixup and Cutmix mix the labels" in out and "fractions" in out


# --- GeneralEvaluator's use_soft_label and batch_size reach the protocol ---------------------


def general_protocol(soft_labels_given: bool = False, **keywords) -> dict:
    from ddrank_steps.api.translate import Context, translate

    evaluator = GeneralEvaluator(device="cpu", **keywords)
    context = Context(
        "accuracy", "m", "set.pt", "config", evaluator.given_keys, has_soft_labels=soft_labels_given
    )
    return translate(evaluator.settings, context).config["protocols"]["accuracy"]


def test_general_evaluator_trains_by_the_references_defaults():
    protocol = general_protocol()
    assert protocol["labels"] == "hard"  # use_soft_label False
    assert (protocol["optimizer"], protocol["scheduler"]) == ("adamw", "cosine")
    assert (protocol["weight_decay"], protocol["augmentation"]) == (0.01, "dsa")
    assert protocol["batch_size"] == 256 and protocol["aug_params"] == {}


def test_general_evaluator_honours_use_soft_label_and_batch_size():
    protocol = general_protocol(
        use_soft_label=True, batch_size=64, teacher_model_names=["ConvNet-3"]
    )
    assert protocol["labels"] == "soft" and protocol["soft_label_mode"] == "M"
    assert protocol["batch_size"] == 64
    # the documentation's syn_batch_size is read too, where batch_size is not given
    assert general_protocol(syn_batch_size=32)["batch_size"] == 32
    # use_soft_label false wins over soft labels given (the reference trains them with CE)
    assert general_protocol(True, use_soft_label=False)["labels"] == "hard"


def test_general_evaluator_given_soft_labels_alone_trains_them_in_mode_s():
    protocol = general_protocol(soft_labels_given=True)
    assert protocol["labels"] == "soft" and protocol["soft_label_mode"] == "S"
    assert general_protocol(True, soft_label_mode="M")["soft_label_mode"] == "M"
