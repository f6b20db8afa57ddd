"""The code a job runs (ddrank_steps/planning/code_inputs.py), whose digest is its `code` param,
and the digest of the code a result records (ddrank_steps/versions.py): an edit reruns the jobs
that run the edited file, and only those; a moved, copied or touched project reruns nothing."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import job_counts

from ddrank_steps.planning import code_inputs
from ddrank_steps.planning.code_inputs import (
    module_sources,
    soft_labels_sources,
    stage_sources,
    train_sources,
)
from ddrank_steps.versions import code_digest, software_versions

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ddrank_steps"
FAMILY_FILES = {
    "models/alexnet.py",
    "models/convnet.py",
    "models/lenet.py",
    "models/mlp.py",
    "models/resnet.py",
    "models/torchvision_models.py",
    "models/vgg.py",
}
AUGMENTATION_FILES = {"augment/dsa.py", "augment/mixup.py", "augment/cutmix.py"}


def relative(sources: list[str]) -> set[str]:
    return {Path(p).relative_to(PACKAGE).as_posix() for p in sources}


def run_protocol(model: str = "ConvNet-3", augmentation: str = "none", **keys) -> dict:
    return {"model": model, "augmentation": augmentation, "aug_params": {}, **keys}


# --- module_sources ----------------------------------------------------------------------


def test_module_sources_of_train_follow_its_imports():
    sources = relative(module_sources("ddrank_steps.stages.train"))
    assert {
        "stages/train.py",
        "training/engine.py",
        "training/run_steps.py",
        "training/together.py",
        "runtime/job_policy.py",
        "training/teachers.py",
        "augment/base.py",
    } <= sources
    assert "__init__.py" in sources and "models/__init__.py" in sources
    # the families and augmentations load on first use: a run adds the ones it uses
    assert not sources & (FAMILY_FILES | AUGMENTATION_FILES | {"models/layers.py"})


def test_module_sources_of_train_exclude_unrelated_stages():
    sources = {Path(p).name for p in module_sources("ddrank_steps.stages.train")}
    assert "score.py" not in sources
    assert "random_subset.py" not in sources


def test_module_sources_are_a_fresh_list_each_call():
    first = module_sources("ddrank_steps.stages.score")
    first.append("changed by the caller")
    assert "changed by the caller" not in module_sources("ddrank_steps.stages.score")


# --- train_sources, soft_labels_sources --------------------------------------------------


def test_a_convnet_run_runs_convnet_and_its_layers_and_no_other_family():
    sources = relative(train_sources(run_protocol("ConvNet-3")))
    assert relative(stage_sources("train")) <= sources
    assert {"models/convnet.py", "models/layers.py"} <= sources
    assert not sources & (FAMILY_FILES - {"models/convnet.py"})


def test_a_run_with_a_vgg_teacher_runs_vgg_too():
    protocol = run_protocol("ConvNet-3", labels="soft", teachers=[{"model": "VGG-11"}])
    sources = relative(train_sources(protocol))
    assert {"models/convnet.py", "models/vgg.py"} <= sources
    assert "models/resnet.py" not in sources
    # the torchvision-style VGG twin is a model option of the same family and file
    assert "models/torchvision_models.py" in sources


def test_a_torchvision_model_runs_only_the_torchvision_module():
    sources = relative(train_sources(run_protocol("torchvision:resnet18")))
    assert "models/torchvision_models.py" in sources
    assert not sources & (FAMILY_FILES - {"models/torchvision_models.py"})


@pytest.mark.parametrize(
    ("augmentation", "files"),
    [
        ("none", set()),
        (None, set()),
        ("dsa", {"augment/dsa.py", "augment/params.py"}),
        ("DSA", {"augment/dsa.py"}),
        ("mixup", {"augment/mixup.py", "augment/mixing.py"}),
        ("cutmix", {"augment/cutmix.py", "augment/mixing.py"}),
    ],
)
def test_a_run_runs_only_its_own_augmentation(augmentation, files):
    sources = relative(train_sources(run_protocol(augmentation=augmentation)))
    assert files <= sources
    others = {f"augment/{name}.py" for name in ("dsa", "mixup", "cutmix")} - files
    assert not sources & others


def test_soft_labels_run_the_stage_and_their_teachers_families():
    sources = relative(soft_labels_sources([{"model": "ResNet-18-BN"}, {"model": "AlexNet"}]))
    assert relative(stage_sources("soft_labels")) <= sources
    assert {"stages/soft_labels.py", "models/resnet.py", "models/alexnet.py"} <= sources
    assert not sources & {"models/convnet.py", "models/vgg.py", "stages/train.py"}
    assert not sources & AUGMENTATION_FILES


def test_the_family_of_every_model_name_is_the_module_that_builds_it():
    from ddrank_steps.models import FAMILY_MODULES, family_module, parse_model_name

    names = ["ConvNet-3", "ConvNet-4-BN", "AlexNet", "VGG-11", "ResNet-18-BN", "LeNet", "MLP"]
    names += ["torchvision:resnet18", "resnet18"]
    families = set(FAMILY_MODULES)
    if importlib.util.find_spec("timm") is not None:
        names.append("timm:resnet18")
    else:  # the optional extra: parsing its names needs it
        families.discard("timm")
    for name in names:
        module = importlib.import_module(family_module(name))
        assert module.FAMILY_NAME == parse_model_name(name).family, name
    assert {parse_model_name(n).family for n in names} == families
    assert family_module("Unknown-3") is None
    assert family_module("torchvision") is None


def test_the_augmentation_table_code_inputs_reads_is_the_packages():
    from ddrank_steps.augment import AUGMENTATION_CLASSES, build_augmentation

    assert code_inputs._augmentation_classes() == AUGMENTATION_CLASSES
    for name, (module, _cls) in AUGMENTATION_CLASSES.items():
        assert type(build_augmentation(name, {})).__module__ == f"ddrank_steps.augment.{module}"


def test_code_inputs_import_no_torch():
    """They run while Snakemake builds the DAG, once per job."""
    code = (
        "import sys\n"
        "from ddrank_steps.planning.code_inputs import soft_labels_sources, train_sources\n"
        "train_sources({'model': 'VGG-11', 'augmentation': 'dsa',"
        " 'teachers': [{'model': 'torchvision:resnet18'}]})\n"
        "soft_labels_sources([{'model': 'ResNet-18'}])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'ddrank_steps.models.vgg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- the code digest of results ----------------------------------------------------------


def test_results_record_the_package_version_and_a_digest_of_the_loaded_code():
    versions = software_versions()
    assert "ddrank-steps" in versions
    assert re.fullmatch(r"[0-9a-f]{16}", versions["ddrank-steps-code"])


def test_the_code_digest_follows_the_content_and_the_name_of_each_file(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    digest = code_digest([a, b])
    assert code_digest([b, a]) == digest  # sorted: the order modules were loaded is moot
    a.write_text("x = 1  # a comment\n")
    assert code_digest([a, b]) != digest
    a.write_text("x = 1\n")
    assert code_digest([a, b]) == digest
    c = tmp_path / "c.py"
    c.write_text("y = 2\n")
    assert code_digest([a, c]) != digest  # the same content under another name


def test_the_code_digest_covers_the_modules_loaded_in_the_process():
    def digest_after(statement: str) -> tuple[str, str]:
        code = (
            f"{statement}\n"
            "from ddrank_steps.versions import loaded_sources, software_versions\n"
            "print(sorted(p.name for p in loaded_sources()))\n"
            "print(software_versions()['ddrank-steps-code'])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True
        ).stdout.splitlines()
        return out[0], out[1]

    names, bare = digest_after("pass")
    assert names == str(["__init__.py", "versions.py"])
    assert digest_after("pass")[1] == bare  # the same code, the same digest
    names, with_formulas = digest_after("import ddrank_steps.formulas")
    assert "formulas.py" in names
    assert with_formulas != bare


# --- the workflow: an edit reruns the jobs that run the edited file ----------------------


def tiny_config() -> dict:
    """One method, one metric, one round, two epochs: a few small jobs."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 1
    protocol = config["protocols"]["digits-dsa"]
    protocol.update(epochs=2, test_interval=1, step_size=1, lr_grid=[0.01])
    config["protocols"] = {"digits-dsa": protocol}
    for real in config["real_protocols"].values():
        real.update(epochs=1, test_interval=1, step_size=1)
    config["methods"] = {
        "random": {
            "dataset": "digits",
            "ipc": 10,
            "images": "reference:random",
            "metrics": {"lrs_hard": {"protocol": "digits-dsa"}},
        }
    }
    return config


def snakemake(repo: Path, workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "workflow" / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    proc = subprocess.run([*cmd, "--cores", "2", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout + proc.stderr


def planned_jobs(repo: Path, workdir: Path) -> dict[str, int]:
    """Rule -> job count of a dry-run (empty when there is nothing to do)."""
    return job_counts(snakemake(repo, workdir, "--dry-run"))


def edit(path: Path) -> None:
    with path.open("a") as file:
        file.write("# an edit that changes nothing\n")


def touch_every_file(folder: Path) -> None:
    """New dates, same content: what a fresh clone or checkout does to the package."""
    later = time.time() + 60
    for path in folder.rglob("*"):
        os.utime(path, (later, later))


@pytest.mark.workflow
def test_a_moved_project_plans_nothing_and_an_edit_reruns_only_its_jobs(tmp_path):
    # A copy of the workflow and the package: the Snakefile runs the package beside it.
    repo = tmp_path / "repo"
    for name in ("workflow", "ddrank_steps"):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))

    first = planned_jobs(repo, workdir)
    assert first.get("train") and first.get("train_real"), first
    snakemake(repo, workdir)
    assert planned_jobs(repo, workdir) == {}

    # `cp -a` of both to another folder, then every package file touched (a fresh clone)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    subprocess.run(["cp", "-a", str(repo), str(workdir), str(moved)], check=True)
    repo, workdir = moved / "repo", moved / "work"
    touch_every_file(repo / "ddrank_steps")
    assert planned_jobs(repo, workdir) == {}

    edit(repo / "ddrank_steps" / "models" / "vgg.py")  # no job here builds a VGG
    assert planned_jobs(repo, workdir) == {}

    edit(repo / "ddrank_steps" / "models" / "convnet.py")  # every run here is a ConvNet-3
    text = snakemake(repo, workdir, "--dry-run")
    planned = job_counts(text)
    assert planned["train"] == first["train"], planned
    assert planned["train_real"] == first["train_real"], planned
    # the rerun is Snakemake's own params trigger, so a dry-run says why
    assert "params have changed since last execution" in text.lower()
    # only the training jobs and what reads their runs: no data job, no set job
    assert not set(planned) & {"prepare_dataset", "random_subset", "reference_set", "syn_set"}


def test_a_score_job_runs_its_metric_module_and_the_leaderboard_every_metric():
    from ddrank_steps.planning.code_inputs import leaderboard_sources, score_sources

    score = {Path(p).relative_to(REPO / "ddrank_steps").as_posix() for p in score_sources("ars")}
    assert {"stages/score.py", "metric_registry/ars.py", "formulas.py"} <= score
    assert "metric_registry/lrs_hard.py" not in score
    board = {Path(p).name for p in leaderboard_sources()}
    assert {"lrs_hard.py", "lrs_soft.py", "_lrs.py", "ars.py", "accuracy.py"} <= board


def test_the_code_digest_follows_the_content_of_the_listed_files_only():
    sources = train_sources(run_protocol("ConvNet-3"))
    assert re.fullmatch(r"[0-9a-f]{16}", code_inputs.digest(sources))
    assert code_inputs.digest(list(reversed(sources))) == code_inputs.digest(sources)
    vgg = train_sources(run_protocol("VGG-11"))
    assert code_inputs.digest(vgg) != code_inputs.digest(sources)
    assert code_inputs.digest(sources) == code_digest([Path(p) for p in sources])
