"""The workflow's stored plan (stored_plan): a run whose config and inputs did not change
plans without torch; a change to anything the plan depends on plans (and checks) again."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning import checks, stored_plan
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.stored_plan import CACHE_FILE, cached_plan, plan_key

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def demo(tmp_path, monkeypatch) -> dict:
    """The demo config, validated, planned from a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, SCHEMA)
    return config


class CountingBuild:
    """build_plan, counting how often the cache had to call it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, config):
        self.calls += 1
        return build_plan(config)


def same_plan(a, b) -> bool:
    return (a.scores, a.protocols, a.runs, a.sets, a.teacher_sets, a.dataset_settings) == (
        b.scores,
        b.protocols,
        b.runs,
        b.sets,
        b.teacher_sets,
        b.dataset_settings,
    ) and a.cached_results() == b.cached_results()


def test_a_stored_plan_is_the_plan_build_plan_returns(demo):
    build = CountingBuild()
    first = cached_plan(demo, build)
    assert CACHE_FILE.is_file()
    second = cached_plan(demo, build)
    assert build.calls == 1
    assert same_plan(second, build_plan(demo))
    assert same_plan(first, second)


def test_a_changed_config_plans_again(demo):
    build = CountingBuild()
    cached_plan(demo, build)
    changed = copy.deepcopy(demo)
    changed["protocols"]["digits-dsa"]["epochs"] = 7
    plan = cached_plan(changed, build)
    assert build.calls == 2
    assert same_plan(plan, build_plan(changed))
    cached_plan(changed, build)
    assert build.calls == 2  # and the new plan is the stored one now


def test_another_working_directory_plans_again(demo, tmp_path, monkeypatch):
    build = CountingBuild()
    cached_plan(demo, build)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(tmp_path / ".snakemake", other / ".snakemake")
    monkeypatch.chdir(other)  # relative paths now name other files
    cached_plan(demo, build)
    assert build.calls == 2


def write_set(path: Path, soft: bool) -> None:
    images = torch.rand(100, 1, 8, 8)
    labels = torch.rand(100, 10).softmax(1) if soft else torch.arange(10).repeat(10)
    torch.save({"images": images, "labels": labels}, path)


def with_own_set(config: dict) -> dict:
    """The demo with a fourth method: a user's .pt set, scored by LRS-soft in mode S."""
    config = copy.deepcopy(config)
    config["protocols"]["digits-s"] = {**config["protocols"]["digits-kd"], "soft_label_mode": "S"}
    config["methods"]["own"] = {
        **config["methods"]["random"],
        "images": "own.pt",
        "metrics": {"lrs_soft": {"protocol": "digits-s"}},
    }
    validate(config, SCHEMA)
    return config


def soft_source(plan) -> str:
    return plan.scores[("own", "lrs_soft")]["protocols"]["syn-any"]["label_source"]


def test_a_rewritten_method_file_plans_again(demo):
    config = with_own_set(demo)
    write_set(Path("own.pt"), soft=False)
    build = CountingBuild()
    assert soft_source(cached_plan(config, build)) == "teacher_logits"
    write_set(Path("own.pt"), soft=True)  # now it carries its own soft labels
    os.utime("own.pt", ns=(1, 10**18))  # a later mtime, even on a coarse clock
    assert soft_source(cached_plan(config, build)) == "set"
    assert build.calls == 2


def test_a_deleted_method_file_is_reported_again(demo):
    config = with_own_set(demo)
    write_set(Path("own.pt"), soft=False)
    cached_plan(config, build_plan)
    Path("own.pt").unlink()
    with pytest.raises(ConfigError, match=r"methods\.own\.images: 'own\.pt' not found"):
        cached_plan(config, build_plan)


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: b"not a pickle",
        lambda blob: blob[: len(blob) // 2],  # a write cut short
        lambda blob: b"",
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_a_corrupt_cache_file_plans_again(demo, damage):
    build = CountingBuild()
    cached_plan(demo, build)
    CACHE_FILE.write_bytes(damage(CACHE_FILE.read_bytes()))
    plan = cached_plan(demo, build)
    assert build.calls == 2
    assert same_plan(plan, build_plan(demo))
    cached_plan(demo, build)
    assert build.calls == 2  # replaced by a good one


def test_a_rejected_config_is_not_stored(demo):
    bad = copy.deepcopy(demo)
    bad["protocols"]["digits-dsa"]["model"] = "ConvNet-99"
    with pytest.raises(ConfigError):
        cached_plan(bad, build_plan)
    assert not CACHE_FILE.exists()
    with pytest.raises(ConfigError):  # checked, and reported, every time
        cached_plan(bad, build_plan)


def test_a_plan_with_pretrained_weights_is_not_stored(demo):
    config = copy.deepcopy(demo)
    config["protocols"]["digits-kd"]["teacher_model_names"] = [
        {"model": "resnet18", "model_options": {"pretrained": True}}
    ]
    assert not stored_plan.cacheable(config)
    assert stored_plan.cacheable(demo)


def test_a_dataset_root_change_two_levels_down_changes_the_key(demo, tmp_path):
    config = copy.deepcopy(demo)
    root = tmp_path / "cifar"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    config["datasets"]["digits"]["root"] = str(root)  # only the key is computed here
    before = plan_key(config)
    assert plan_key(config) == before
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    assert plan_key(config) != before


def test_a_teacher_checkpoint_appearing_changes_the_key(demo, tmp_path):
    config = copy.deepcopy(demo)
    config["teacher_dir"] = str(tmp_path / "teachers")
    before = plan_key(config)
    folder = tmp_path / "teachers" / "digits" / "ConvNet-3"
    folder.mkdir(parents=True)
    after_folder = plan_key(config)
    (folder / "ckpt_best.pt").write_bytes(b"")
    assert len({before, after_folder, plan_key(config)}) == 3


def a_check_reading(path: Path):
    """A check that reads `path` (listed nowhere but in the check itself): a file saying
    "bad" is a config error, a missing one is fine."""

    def check_marker(config: dict, reads) -> None:
        marker = reads.look(path)
        if marker.is_file() and marker.read_text() == "bad":
            raise ConfigError(f"{path} says bad")

    return check_marker


def test_a_file_a_check_reads_is_watched_without_a_list(demo, monkeypatch):
    marker = Path("marker.txt")
    marker.write_text("good")
    monkeypatch.setattr(checks, "CHECKS", (*checks.CHECKS, a_check_reading(marker)))
    build = CountingBuild()
    cached_plan(demo, build)
    cached_plan(demo, build)
    assert build.calls == 1
    marker.write_text("bad")
    os.utime(marker, ns=(1, 10**18))  # a later mtime, even on a coarse clock
    with pytest.raises(ConfigError, match=r"marker\.txt says bad"):
        cached_plan(demo, build)


def test_a_file_a_check_found_missing_plans_again_when_it_appears(demo, monkeypatch):
    marker = Path("marker.txt")
    monkeypatch.setattr(checks, "CHECKS", (*checks.CHECKS, a_check_reading(marker)))
    build = CountingBuild()
    cached_plan(demo, build)
    cached_plan(demo, build)
    assert build.calls == 1
    marker.write_text("bad")  # its absence was what the check saw
    with pytest.raises(ConfigError, match=r"marker\.txt says bad"):
        cached_plan(demo, build)


def test_an_image_folder_listed_for_its_set_size_is_watched(demo, tmp_path):
    """set_size counts the class folders of an ImageFolder tree while the plan is built
    without checks: the listing is recorded where it is read."""
    config = copy.deepcopy(demo)
    train = tmp_path / "tree" / "train"
    for name in ("a", "b"):
        (train / name).mkdir(parents=True)
    config["datasets"]["digits"] = {
        **config["datasets"]["digits"],
        "source": "ImageFolder",
        "root": str(tmp_path / "tree"),
    }
    plan = build_plan(config, check=False)
    assert str(train) in plan.reads.states
    assert plan.reads.now() == plan.reads.states
    (train / "c").mkdir()
    assert plan.reads.now() != plan.reads.states


def test_a_source_change_changes_the_digest(tmp_path, monkeypatch):
    package = tmp_path / "ddrank_steps"
    shutil.copytree(stored_plan.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stored_plan, "PACKAGE_DIR", package)
    before = stored_plan.source_digest()
    with (package / "formulas.py").open("a") as f:
        f.write("\n# an edit\n")
    assert stored_plan.source_digest() != before


# Runs `snakemake` in this interpreter and says, as it exits, whether torch was imported.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
    "from snakemake.cli import main\n"
    "sys.argv = ['snakemake', *sys.argv[1:]]\n"
    "main()\n"
)


def dry_run_imports_torch(workdir: Path) -> bool:
    cmd = [
        *(sys.executable, "-c", PROBE),
        *("--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(workdir)),
        *("--configfile", str(REPO / "config" / "config.yaml"), "--cores", "1", "--dry-run"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "torch imported:" in text, text[-3000:]
    return "torch imported: True" in text


def test_a_no_change_workflow_parse_imports_no_torch(tmp_path):
    assert dry_run_imports_torch(tmp_path)  # planned: the checks need torch
    assert (tmp_path / CACHE_FILE).is_file()
    assert not dry_run_imports_torch(tmp_path)  # the stored plan, every input function
