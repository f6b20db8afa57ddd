"""Big syn, rdm and reference sets under torchrun: which sets count as big (ipc x classes
at or above resources.ddp_min_images), what that does to their cache keys and their jobs'
commands, and a big set trained by the workflow on 2 gloo processes against one."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import dry_run
from snakemake.utils import validate

from ddrank_steps.data.datasets import SOURCES
from ddrank_steps.data.datasets.cifar import CIFAR10_FORMAT, CIFAR100_FORMAT
from ddrank_steps.data.datasets.imagenet import SUBSETS
from ddrank_steps.data.datasets.mnist import FASHION_FORMAT, MNIST_FORMAT
from ddrank_steps.errors import ConfigError
from ddrank_steps.planning import set_size
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.training import distributed

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TORCHRUN = "-m torch.distributed.run --standalone --nnodes 1 --nproc-per-node 2"


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))  # fills the schema's defaults in place
    return config


@pytest.fixture(scope="module")
def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def with_resources(demo: dict, **resources) -> dict:
    config = copy.deepcopy(demo)
    config["resources"] = resources
    return validated(config)


def set_keys(plan) -> dict[tuple[str, str, str], str]:
    """(method, metric, term) -> key of every syn and rdm term."""
    return {
        (method, metric, term): p["key"]
        for (method, metric), spec in plan.scores.items()
        for term, p in spec["protocols"].items()
        if p["set"] != "real"
    }


# --- which sets are big ---------------------------------------------------------------------


def test_every_source_has_a_class_count():
    for name in SOURCES:
        if name != "ImageFolder":
            assert set_size.class_count({"source": name}) > 0, name


def test_the_class_counts_are_the_loaders():
    counts = set_size.FIXED_CLASS_COUNTS
    assert counts["CIFAR10"] == CIFAR10_FORMAT.num_classes
    assert counts["CIFAR100"] == CIFAR100_FORMAT.num_classes
    assert counts["MNIST"] == len(MNIST_FORMAT.classes)
    assert counts["FashionMNIST"] == len(FASHION_FORMAT.classes)
    for subset, indices in SUBSETS.items():
        assert counts[subset] == len(indices), subset


def test_an_image_folder_counts_its_classes_list_or_its_train_folders(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / "train" / name).mkdir(parents=True)
    (tmp_path / "train" / "notes.txt").write_text("not a class")
    tree = {"source": "ImageFolder", "root": str(tmp_path)}
    assert set_size.class_count(tree) == 3
    assert set_size.class_count({**tree, "classes": ["a", "c"]}) == 2
    assert set_size.set_images({**tree, "root": str(tmp_path / "none")}, 10) is None


def test_the_default_threshold_takes_imagenet_ipc50_and_not_cifar_ipc50():
    schema = yaml.safe_load(SCHEMA.read_text())
    default = schema["properties"]["resources"]["properties"]["ddp_min_images"]["default"]
    assert default == set_size.DDP_MIN_IMAGES
    resources = {"real_processes": 4}
    imagenet = set_size.set_images({"source": "ImageNet1K"}, 50)
    cifar = set_size.set_images({"source": "CIFAR10"}, 50)
    assert (imagenet, cifar) == (50_000, 500)
    assert set_size.set_processes(resources, imagenet) == 4
    assert set_size.set_processes(resources, cifar) == 1
    assert set_size.set_processes({"real_processes": 1}, imagenet) == 1  # nothing to split
    assert set_size.set_processes(resources, None) == 1  # size unknown: as before


def test_the_processes_of_a_job_share_its_threads(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.process_threads(4) == 4
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    assert (distributed.process_threads(4), distributed.process_threads(1)) == (2, 1)


# --- cache keys -----------------------------------------------------------------------------


def test_a_set_below_the_threshold_keeps_its_key(demo):
    # the demo's sets hold 10 x 10 = 100 images; a soft-label run's key holds its teacher's,
    # the real-hard run keyed for real_processes, so the baseline has the same processes
    before = build_plan(with_resources(demo, real_processes=2), check=False)
    small = build_plan(with_resources(demo, real_processes=2, ddp_min_images=101), check=False)
    assert set_keys(small) == set_keys(before)
    assert not any("processes" in small.protocols[key] for key in set_keys(small).values())


def test_a_set_at_the_threshold_is_keyed_for_the_processes(demo):
    before = build_plan(with_resources(demo, real_processes=2), check=False)
    big = build_plan(with_resources(demo, real_processes=2, ddp_min_images=100), check=False)
    keys_before, keys_big = set_keys(before), set_keys(big)
    assert keys_before.keys() == keys_big.keys()
    for term, key in keys_big.items():
        assert key != keys_before[term], term
        assert big.protocols[key]["processes"] == 2
        # the same run otherwise: only `processes` was added
        unkeyed = {k: v for k, v in big.protocols[key].items() if k != "processes"}
        assert unkeyed == before.protocols[keys_before[term]], term


def test_one_process_keeps_every_key_at_any_threshold(demo):
    before = build_plan(validated(demo), check=False)
    one = build_plan(with_resources(demo, real_processes=1, ddp_min_images=1), check=False)
    assert set(one.protocols) == set(before.protocols)


def test_a_big_set_whose_batch_does_not_split_is_a_config_error(demo):
    config = with_resources(demo, real_processes=3, ddp_min_images=100)
    with pytest.raises(ConfigError, match=r"batch_size 256 must be divisible by the 3 "):
        build_plan(config, check=False)


# --- the jobs' commands ---------------------------------------------------------------------


def train_jobs(text: str) -> dict[str, list[str]]:
    """set wildcard -> the dry-run blocks of its `train` jobs."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        if block.startswith("rule train:"):
            found = re.search(r"\bset=([\w.+-]+)", block)
            assert found, block
            jobs.setdefault(found.group(1), []).append(block)
    return jobs


@pytest.mark.workflow
def test_a_big_set_is_launched_under_torchrun_and_a_small_one_is_not(demo, tmp_path):
    config = copy.deepcopy(demo)
    config["num_eval"] = 1
    # train_gpus 1: a dry-run only, so no GPU is needed to see the jobs' declared GPUs
    config["resources"] = {"real_processes": 2, "ddp_min_images": 100, "train_gpus": 1}
    metrics = {"lrs_hard": {"protocol": "digits-dsa"}}
    config["methods"] = {
        "big": {"dataset": "digits", "ipc": 10, "images": "reference:random", "metrics": metrics},
        "small": {"dataset": "digits", "ipc": 5, "images": "reference:kmeans", "metrics": metrics},
    }
    jobs = train_jobs(dry_run(tmp_path, config))
    assert sorted(jobs) == ["rdm-ipc10", "rdm-ipc5", "syn-big", "syn-small"], sorted(jobs)
    for name, blocks in jobs.items():
        big = name in ("rdm-ipc10", "syn-big")
        for block in blocks:
            assert (TORCHRUN in block) == big, block
            assert ("python -m ddrank_steps.stages.train" in block) == (not big), block
            # one thread and one GPU per process, as a real-hard job declares them
            assert bool(re.search(r"^\s*threads: 2$", block, re.MULTILINE)) == big, block
            assert re.search(rf"resources: .*\bgpu={2 if big else 1},", block), block


# --- a big set trained under torchrun -------------------------------------------------------

TRAINING = {
    "model": "ConvNet-3",
    "model_options": {"width": 16},
    "augmentation": "none",
    "scheduler": "none",
    # long enough to converge (about 0.93), where the float order of the all-reduced
    # gradients moved the accuracy by under 0.01 over three seeds
    "epochs": 80,
    "batch_size": 20,  # 5 steps an epoch over the 100 images, 10 images a process
    "lr": 0.05,
    "test_interval": 20,
    "select": "final",
}


def train_the_set(workdir: Path, ddp_min_images: int) -> dict:
    """The workflow's one run of a 100-image reference set; its run file."""
    config = {
        "num_eval": 1,
        "device": "cpu",
        "resources": {"real_processes": 2, "ddp_min_images": ddp_min_images},
        "datasets": {"digits": {"source": "digits"}},
        "protocols": {"small": TRAINING},
        "methods": {
            "random": {
                "dataset": "digits",
                "ipc": 10,
                "images": "reference:random",
                "metrics": {"accuracy": {"protocol": "small"}},
            }
        },
    }
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run,) = build_plan(validated(config), check=False).runs
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    cmd += ["--cores", "2", run]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return json.loads((workdir / run).read_text())


@pytest.mark.workflow
def test_a_big_set_on_two_gloo_processes_matches_one_process(tmp_path):
    two = train_the_set(tmp_path / "two", ddp_min_images=100)
    one = train_the_set(tmp_path / "one", ddp_min_images=101)
    assert (two["processes"], one["processes"]) == (2, 1)
    # the same images per step, the batch split in halves: only the float summation order
    # of the all-reduced gradients differs
    assert two["selected"]["acc"] > 0.8  # it learned (10 classes: chance is 0.1)
    assert abs(two["selected"]["acc"] - one["selected"]["acc"]) <= 0.03
