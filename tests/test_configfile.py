"""`--configfile` means what it says: the user's file replaces the demo config instead of
being merged into it (Snakemake merges by default, which scored the demo's methods beside
the user's)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import job_counts

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"

pytestmark = pytest.mark.workflow

ONE_METHOD = {
    "seed": 0,
    "num_eval": 3,
    "datasets": {"digits": {"source": "digits"}},
    "protocols": {
        "p": {"model": "ConvNet-3", "model_options": {"width": 32}, "epochs": 10, "lr_grid": [0.1]}
    },
    "real_protocols": {"digits-ConvNet-3": {"lr": 0.05, "epochs": 5, "batch_size": 128}},
    "methods": {
        "mine": {
            "dataset": "digits",
            "ipc": 10,
            "images": "reference:random",
            "metrics": {"lrs_hard": {"protocol": "p"}},
        }
    },
}


def planned(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts of a dry run in `workdir`, which holds the demo at config/config.yaml as
    a clone does."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    cmd += ["--directory", str(workdir), "--cores", "2", "--dry-run", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return job_counts(proc.stdout + proc.stderr)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    return tmp_path


def test_a_configfile_replaces_the_demo_config(clone):
    (clone / "mine.yaml").write_text(yaml.safe_dump(ONE_METHOD))
    jobs = planned(clone, "--configfile", str(clone / "mine.yaml"))
    # one method, one metric: 3 rounds × (syn, rdm) runs, 3 real-hard runs, one score
    assert jobs["score"] == 1 and jobs["train"] == 6 and jobs["train_real"] == 3
    assert jobs["reference_set"] == 1 and jobs["syn_set"] == 1


def test_without_a_configfile_the_demo_runs(clone):
    demo = yaml.safe_load((clone / "config" / "config.yaml").read_text())
    scores = sum(len(m["metrics"]) for m in demo["methods"].values())
    assert planned(clone)["score"] == scores


def test_config_overrides_still_apply_to_the_demo(clone):
    jobs = planned(clone, "--config", "num_eval=1")
    assert jobs["train_real"] == 1
