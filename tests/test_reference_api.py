"""DD-Ranking's Python API and YAML configs on the cached workflow: the reference's three
demo flows (hard, soft, ARS; config file and keywords), what a second call retrains,
`ddrank import-config`, and the errors bad input gets before any training.

The data is a tiny CIFAR-10 tree in torchvision's pickle format (10 train images per
class); the protocol a 1-block ConvNet for 2 epochs, so each flow takes seconds per job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from format_writers import write_cifar10
from test_transforms import REFERENCE_YAML

from ddrank_steps.api.config import Config
from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.metrics import (
    AugmentationRobustScore,
    GeneralEvaluator,
    LabelRobustScoreHard,
    LabelRobustScoreSoft,
)

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

LRS_KEYS = {
    f"{q}_{s}"
    for q in ("hard_label_recovery", "improvement_over_random", "label_robust_score")
    for s in ("mean", "std")
}
# the reference code's keys, and its documentation's spellings of the two gaps
ARS_KEYS = {
    f"{q}_{s}"
    for q in ("with_aug_scores", "without_aug_scores", "augmentation_robust_score")
    for s in ("mean", "std")
} | {f"{q}_{s}" for q in ("with_aug", "without_aug") for s in ("mean", "std")}
REAL = {"CIFAR10-ConvNet-1": {"lr": 0.01, "epochs": 2, "batch_size": 50, "step_size": 1}}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One work directory for the module: the cache every call shares."""
    return tmp_path_factory.mktemp("work")


def reference_yaml(path: Path, data: Path, **changes) -> Path:
    """A config in the reference's format (its demo's keys), small enough to run."""
    config = {
        "dataset": "CIFAR10",
        "real_data_path": str(data),
        "ipc": 1,
        "im_size": [32, 32],
        "model_name": "ConvNet-1",
        "use_torchvision": False,
        "data_aug_func": "dsa",
        "aug_params": {"prob_flip": 0.5, "ratio_rotate": 15.0, "ratio_scale": 1.2},
        "use_zca": False,
        "custom_train_trans": None,
        "custom_val_trans": None,
        "optimizer": "sgd",
        "lr_scheduler": "step",
        "step_size": 1,
        "weight_decay": 0.0005,
        "momentum": 0.9,
        "num_eval": 2,
        "num_epochs": 2,
        "syn_batch_size": 10,
        "real_batch_size": 50,
        "default_lr": 0.01,
        "num_workers": 0,
        "device": "cpu",
        "dist": False,
        "eval_full_data": True,
        "random_data_format": "tensor",
        "save_path": str(path.parent / "scores.csv"),
    }
    config.update(changes)
    for key, value in list(config.items()):
        if value is ...:  # a key the flow does not read
            del config[key]
    path.write_text(yaml.safe_dump(config))
    return path


def syn_set(seed: int, ipc: int = 1) -> torch.Tensor:
    """A class-sorted tensor set in CIFAR-10's normalised space."""
    return torch.randn(10 * ipc, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def in_range(result: dict) -> None:
    for key, value in result.items():
        assert value == value, key  # not NaN
        if "robust_score" in key and key.endswith("mean"):
            assert 0.0 <= value <= 100.0, key
        elif key.endswith("mean"):
            assert -1.0 <= value <= 1.0, key
        else:
            assert value >= -1e-12, key


def run_files(work: Path) -> set[str]:
    return {str(p.relative_to(work)) for p in (work / "results" / "runs").rglob("*.json")}


# --- the reference's three demo flows, in both forms -----------------------------------------


def test_hard_label_flow_with_a_config_file_and_with_keywords(data, work, tmp_path, capsys):
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=work, real_protocols=REAL)
    from_file = evaluator.compute_metrics(image_tensor=syn_set(0))
    assert set(from_file) == LRS_KEYS
    in_range(from_file)
    out = capsys.readouterr().out
    assert "real-hard" in out and "round 1 seed 1" in out  # the terms are printed
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0] == "hard_label_recovery,improvement_over_random,lrs" and len(rows) == 3

    before = run_files(work)
    keywords = yaml.safe_load(path.read_text())
    evaluator = LabelRobustScoreHard(**keywords, work_dir=work, real_protocols=REAL)
    assert evaluator.compute_metrics(image_tensor=syn_set(0)) == from_file
    assert run_files(work) == before  # the same config: nothing trained again


def test_soft_label_flow_mode_s_with_its_own_soft_labels(data, work, tmp_path):
    path = reference_yaml(
        tmp_path / "soft.yaml",
        data,
        soft_label_mode="S",
        soft_label_criterion="sce",
        loss_fn_kwargs={"temperature": 1.0, "scale_loss": False},
        use_aug_for_hard=False,
        stu_use_torchvision=False,
        tea_use_torchvision=False,
        teacher_dir=str(tmp_path / "teachers"),
        teacher_model_names=["ConvNet-1"],
        use_torchvision=...,
    )
    soft = torch.randn(10, 10, generator=torch.Generator().manual_seed(5))
    config = Config(config_path=path)  # the documentation's spelling
    result = LabelRobustScoreSoft(config, work_dir=work, real_protocols=REAL).compute_metrics(
        image_tensor=syn_set(1), soft_labels=soft
    )
    assert set(result) == LRS_KEYS
    in_range(result)
    keywords = yaml.safe_load(path.read_text())
    again = LabelRobustScoreSoft(**keywords, work_dir=work, real_protocols=REAL)
    assert again.compute_metrics(image_tensor=syn_set(1), soft_labels=soft) == result


def test_ars_flow_mode_m_with_teachers_trained_on_the_real_data(data, work, tmp_path, monkeypatch):
    path = reference_yaml(
        tmp_path / "ars.yaml",
        data,
        label_type="soft",
        soft_label_mode="M",
        soft_label_criterion="kl",
        loss_fn_kwargs={"temperature": 1.0, "scale_loss": False},
        teacher_dir=str(tmp_path / "teachers"),  # empty: the teacher is real-hard's model
        teacher_model_names=["ConvNet-1"],
        stu_use_torchvision=False,
        tea_use_torchvision=False,
        batch_size=10,
        random_data_format="image",
        random_data_path=str(tmp_path / "random"),
        syn_batch_size=...,
        real_batch_size=...,
        eval_full_data=...,
        use_torchvision=...,
    )
    result = AugmentationRobustScore(
        Config.from_file(path), work_dir=work, real_protocols=REAL
    ).compute_metrics(image_tensor=syn_set(2))
    assert set(result) == ARS_KEYS
    in_range(result)
    # the rdm subsets, exported as the reference's image folders (one per round)
    assert len(list((tmp_path / "random" / "iter1").rglob("*.png"))) == 10
    assert result["with_aug_scores_mean"] == result["with_aug_mean"]
    assert result["without_aug_scores_std"] == result["without_aug_std"]
    keywords = yaml.safe_load(path.read_text())
    # without save_path: the reference's CSV under ./results/, from the current directory
    keywords.pop("save_path")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    again = AugmentationRobustScore(**keywords, work_dir=work, real_protocols=REAL)
    assert again.compute_metrics(image_tensor=syn_set(2)) == result
    default = tmp_path / "cwd" / "results" / "CIFAR10" / "ConvNet-1" / "ipc1" / "aug_scores.csv"
    rows = default.read_text().splitlines()
    assert rows[0] == "with_aug_scores,without_aug_scores,ars_list" and len(rows) == 3


def test_general_evaluator_gives_the_plain_accuracy(data, work, tmp_path):
    keywords = yaml.safe_load(reference_yaml(tmp_path / "acc.yaml", data).read_text())
    for key in ("dist", "eval_full_data", "random_data_format", "use_torchvision"):
        keywords.pop(key)
    result = GeneralEvaluator(**keywords, work_dir=work).compute_metrics(image_tensor=syn_set(0))
    assert set(result) == {"acc_mean", "acc_std"} and 0.0 <= result["acc_mean"] <= 1.0


# --- a second call trains only what it adds ---------------------------------------------------


def test_a_second_set_trains_only_its_own_syn_runs(data, work, tmp_path):
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=work, real_protocols=REAL)
    evaluator.compute_metrics(image_tensor=syn_set(10))
    before = run_files(work)
    evaluator.compute_metrics(image_tensor=syn_set(11))
    added = run_files(work) - before
    assert len(added) == 2  # two rounds of the new set's syn-hard run
    assert all("/syn-set-" in p for p in added)  # no real-hard, no rdm run


# --- ddrank import-config, and the same scores from snakemake ---------------------------------


def demo_config(name: str) -> dict:
    """The reference's demo config `name` (its keys and values, as the YAML files it ships
    with hold them), written here so the test needs nothing beside the checkout."""
    common = {"ipc": 10, "momentum": 0.9, "num_eval": 5, "num_workers": 4, "device": "cuda"}
    common |= {"dist": True, "eval_full_data": False}
    if name == "Demo_LRS_Hard_Label":
        dsa = {"flip": 0.5, "rotate": 15.0, "saturation": 2.0, "brightness": 1.0}
        dsa |= {"contrast": 0.5, "scale": 1.2, "crop": 0.125, "cutout": 0.5}
        return common | {
            "dataset": "CIFAR10",
            "real_data_path": "./dataset/",
            "im_size": [32, 32],
            "model_name": "ConvNet-3",
            "use_torchvision": False,
            "data_aug_func": "dsa",
            "aug_params": dsa,
            "use_zca": False,
            "custom_train_trans": None,
            "custom_val_trans": None,
            "optimizer": "sgd",
            "lr_scheduler": "step",
            "step_size": 500,
            "weight_decay": 0.0005,
            "num_epochs": 1000,
            "syn_batch_size": 128,
            "real_batch_size": 256,
            "default_lr": 0.01,
            "random_data_path": "./results/my_method_random_data.pt",
            "random_data_format": "tensor",
            "save_path": "./results/my_method_hard_label_scores.csv",
        }
    # the soft-label demos share ImageNet-1K, ResNet-18-BN teachers and CutMix
    soft = common | {"dataset": "ImageNet1K", "real_data_path": "./dataset/ImageNet1K/"}
    soft |= {"im_size": [224, 224], "model_name": "ResNet-18-BN"}
    soft |= {"stu_use_torchvision": True, "tea_use_torchvision": True}
    soft |= {"teacher_dir": "./teacher_models", "teacher_model_names": ["ResNet-18-BN"]}
    soft |= {"data_aug_func": "cutmix", "aug_params": {"beta": 1.0}, "use_zca": False}
    soft |= yaml.safe_load(REFERENCE_YAML)  # its train and test transform lists
    soft |= {"soft_label_mode": "M", "soft_label_criterion": "kl"}
    soft |= {"loss_fn_kwargs": {"temperature": 1.0, "scale_loss": False}}
    soft |= {"optimizer": "adamw", "lr_scheduler": "cosine", "weight_decay": 0.01}
    soft |= {"num_epochs": 300, "random_data_format": "image"}
    soft |= {"random_data_path": "./random_data/my_method/ImageNet1K/IPC10/"}
    if name == "Demo_LRS_Soft_Label":
        return soft | {
            "use_aug_for_hard": False,
            "syn_batch_size": 1024,
            "real_batch_size": 1024,
            "save_path": "./my_method_soft_label_scores.csv",
        }
    soft.pop("eval_full_data")
    soft["custom_val_trans"][1]["args"]["size"] = 224  # its CenterCrop; training stays at 64
    return soft | {
        "label_type": "soft",
        "batch_size": 1024,
        "save_path": "./my_method_ars_scores.csv",
    }


def import_config(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ddrank_steps.api.ddrank_command", "import-config", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize(
    "name, metric",
    [("Demo_LRS_Hard_Label", "lrs_hard"), ("Demo_LRS_Soft_Label", "lrs_soft"), ("Demo_ARS", "ars")],
)
def test_the_references_demo_yamls_import(name, metric, tmp_path):
    source = tmp_path / f"{name}.yaml"
    source.write_text(yaml.safe_dump(demo_config(name), sort_keys=False))
    out = tmp_path / "out.yaml"
    proc = import_config(str(source), "--metric", metric, "-o", str(out))
    # translated and written; it runs once its dataset is where the file says (not here)
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        assert "field 'root': folder not found" in proc.stderr, proc.stderr
    config = yaml.safe_load(out.read_text())
    assert list(config["methods"]) == [name]
    assert metric in config["methods"][name]["metrics"]


def test_the_api_and_snakemake_configfile_give_identical_scores(data, work, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no save_path: the reference's ./results/... CSV lands here
    path = reference_yaml(tmp_path / "hard.yaml", data, save_path=...)
    images = tmp_path / "set.pt"
    torch.save(syn_set(20), images)
    evaluator = LabelRobustScoreHard(
        Config.from_file(path), work_dir=work, method_name="mine", real_protocols=REAL
    )
    api = evaluator.compute_metrics(image_tensor=syn_set(20))

    out = tmp_path / "ddrank.yaml"
    args = ("--metric", "lrs_hard", "--method", "mine", "--images", str(images), "-o", str(out))
    proc = import_config(str(path), *args)
    # ConvNet-1 has no built-in real-hard recipe: the file is written, and says what to add
    assert proc.returncode == 2 and "real_protocols: {CIFAR10-ConvNet-1" in proc.stderr
    config = yaml.safe_load(out.read_text())
    config["real_protocols"] = REAL  # the edit the message asks for
    out.write_text(yaml.safe_dump(config))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(fresh), "--cores", "2", "--configfile", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((fresh / "results/scores/mine/lrs_hard.json").read_text())["summary"]
    assert api["label_robust_score_mean"] == summary["lrs"]["mean"]
    assert api["hard_label_recovery_mean"] == summary["hlr"]["mean"]
    assert api["improvement_over_random_mean"] == summary["ior"]["mean"]


def test_every_documented_config_key_is_mapped_or_refused(tmp_path, data):
    from ddrank_steps.api.translate import DEFAULTS

    for metric, keys in DEFAULTS.items():
        path = tmp_path / f"{metric}.yaml"
        extra = {"soft_label_mode": "M", "soft_label_criterion": "kl", "label_type": "soft"}
        extra = {k: v for k, v in extra.items() if k in keys}
        reference_yaml(path, data, model_name="ConvNet-3", **extra)
        config = yaml.safe_load(path.read_text())
        config = {k: v for k, v in config.items() if k in keys}
        path.write_text(yaml.safe_dump(config))
        proc = import_config(
            str(path), "--metric", metric, "-o", str(tmp_path / f"{metric}.out.yaml")
        )
        assert proc.returncode == 0, (metric, proc.stderr)


# --- bad input: one clear error, before any training ------------------------------------------


def test_an_unknown_reference_key_is_named(tmp_path, data):
    path = reference_yaml(tmp_path / "bad.yaml", data, num_epoch=3)
    with pytest.raises(ConfigError, match=r"'num_epoch' \(did you mean 'num_epochs'\?\)"):
        LabelRobustScoreHard(Config.from_file(path))
    proc = import_config(str(path), "--metric", "lrs_hard", "-o", str(tmp_path / "o.yaml"))
    assert proc.returncode == 2 and "num_epoch" in proc.stderr


def test_lrs_soft_without_soft_label_mode_names_the_key(tmp_path, data):
    path = reference_yaml(tmp_path / "soft.yaml", data, soft_label_criterion="kl")
    with pytest.raises(ConfigError, match=r"needs soft_label_mode.*add `soft_label_mode: \.\.\.`"):
        LabelRobustScoreSoft(Config.from_file(path))


@pytest.mark.parametrize(
    "tensor, expected",
    [
        (torch.randn(10, 1, 32, 32), "does not match dataset CIFAR10"),  # channels
        (torch.randn(20, 3, 32, 32), "num_classes x ipc"),  # 2 per class at ipc 1
        (torch.randn(10, 3, 32), "(N, C, H, W)"),
        (torch.randn(10, 3, 32, 32) * 300, "not in its normalised space"),  # value range
    ],
)
def test_a_wrong_tensor_is_refused_before_any_job(data, tmp_path, tensor, expected):
    work = tmp_path / "work"
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=work, real_protocols=REAL)
    with pytest.raises(InputError, match=re.escape(expected)):
        evaluator.compute_metrics(image_tensor=tensor)
    # CIFAR-10's class count, shape and statistics are known without preparing it: no
    # job ran, and a refused call leaves neither its set nor its config behind
    assert not (work / "results").exists() and not (work / ".snakemake").exists()
    assert not (work / "inputs").exists() and not (work / "configs").exists()


def test_a_wrong_class_folder_set_is_refused_before_any_training(data, tmp_path):
    """A class-folder set is matched to the class names, which CIFAR-10 reads from its
    meta file: the dataset is prepared first (a cache, kept), nothing is trained."""
    work = tmp_path / "work"
    for name in ("cat", "dog", "frog"):
        (tmp_path / "set" / name).mkdir(parents=True)
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=work, real_protocols=REAL)
    with pytest.raises(InputError, match=r"has 3 class folders .*dataset CIFAR10 has 10"):
        evaluator.compute_metrics(image_path=str(tmp_path / "set"))
    assert (work / "results" / "datasets" / "CIFAR10" / "meta.json").is_file()
    assert not (work / "results" / "runs").exists()
    assert not (work / "inputs").exists() and not (work / "configs").exists()


def test_an_image_path_that_is_not_a_class_folder_tree_is_refused(data, tmp_path):
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=tmp_path / "work")
    with pytest.raises(InputError, match="is not a folder"):
        evaluator.compute_metrics(image_path=str(tmp_path / "nowhere"))
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="holds no class subfolders"):
        evaluator.compute_metrics(image_path=str(tmp_path / "flat"))


@pytest.mark.parametrize("lr", [-0.1, 0.0, "0.01", float("nan")])
def test_a_syn_lr_that_is_not_a_positive_number_is_refused(data, tmp_path, lr):
    path = reference_yaml(tmp_path / "hard.yaml", data)
    evaluator = LabelRobustScoreHard(Config.from_file(path), work_dir=tmp_path / "work")
    with pytest.raises(InputError, match="syn_lr"):
        evaluator.compute_metrics(image_tensor=syn_set(0), syn_lr=lr)


# --- Python transforms and an interrupted call ------------------------------------------------


def test_python_transforms_are_translated_and_a_lambda_is_refused(data):
    from torchvision import transforms

    train = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    )
    evaluator = LabelRobustScoreHard(custom_train_trans=train, device="cpu")
    spec = evaluator.settings["custom_train_trans"]
    assert [item["name"] for item in spec] == ["RandomCrop", "RandomHorizontalFlip"]
    assert spec[0]["args"]["padding"] == 4
    with pytest.raises(
        ConfigError, match=r"cannot translate a lambda.*mypackage\.module:MyTransform"
    ):
        LabelRobustScoreHard(custom_train_trans=transforms.Compose([lambda x: x]))


INTERRUPTED = """
import signal, sys, torch
# Ctrl-C as at a terminal, even when the tests run as a background job (which starts every
# child with SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
from ddrank_steps.metrics import LabelRobustScoreHard
evaluator = LabelRobustScoreHard(dataset="CIFAR10", real_data_path=sys.argv[1], ipc=1,
    model_name="ConvNet-1", data_aug_func="dsa", aug_params=None, num_epochs=2, num_eval=3,
    syn_batch_size=10, eval_full_data=True, device="cpu", work_dir=sys.argv[2], cores=1,
    real_protocols={REAL!r})
images = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(30))
print(evaluator.compute_metrics(image_tensor=images)["label_robust_score_mean"])
"""


def incomplete_outputs(work: Path) -> set[str]:
    """Outputs Snakemake had not seen finish when it stopped (its `incomplete` markers: the
    path, urlsafe-base64 encoded, split into '@'-prefixed folders when long)."""
    from base64 import urlsafe_b64decode

    root = work / ".snakemake" / "incomplete"
    if not root.is_dir():
        return set()
    markers = (p.relative_to(root).parts for p in root.rglob("*") if p.is_file())
    return {urlsafe_b64decode("".join(s.lstrip("@") for s in parts)).decode() for parts in markers}


def test_an_interrupted_call_keeps_its_finished_runs_and_the_next_resumes(data, tmp_path):
    import signal
    import time

    script = tmp_path / "score.py"
    script.write_text(INTERRUPTED.replace("{REAL!r}", repr(REAL)))
    work = tmp_path / "work"
    cmd = [sys.executable, str(script), str(data), str(work)]
    # from tmp_path: without save_path the call writes the reference's ./results/... CSV
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    deadline = time.time() + 300
    while (
        time.time() < deadline
        and len(run_files(work) if (work / "results" / "runs").exists() else ()) < 2
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.communicate(timeout=120)
    # a job still running at Ctrl-C is not finished, even if it wrote its file meanwhile
    unfinished = incomplete_outputs(work)
    finished = {p: (work / p).stat().st_mtime_ns for p in run_files(work) - unfinished}
    assert finished  # at least one job had finished
    assert not (work / "results" / "scores").exists() or not any(
        (work / "results" / "scores").rglob("*.json")
    )

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 0.0 <= float(done.stdout.strip().splitlines()[-1]) <= 100.0
    for path, mtime in finished.items():  # kept, not trained again
        assert (work / path).stat().st_mtime_ns == mtime, path
