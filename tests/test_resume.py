"""A training job killed with SIGKILL after its first checkpoint resumes on a plain rerun,
says so in its log, and writes the run file an uninterrupted job writes (timings aside):
a syn LR-grid job in one process and a real-hard job under torchrun (2 gloo processes).
One small workflow (digits, a few epochs, a checkpoint after every epoch) run three times:
killed, resumed, and forced again from scratch for the uninterrupted run files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import snakemake_command, write_config
from test_faults import fault_config

from ddrank_steps import paths

pytestmark = pytest.mark.workflow

UNTIL = ("--until", "train", "train_real")


def resume_config() -> dict:
    config = fault_config()
    config["protocols"]["digits-dsa"].update(epochs=40, test_interval=20, lr_grid=[0.01, 0.05])
    config["real_protocols"]["digits-ConvNet-3"].update(epochs=8, test_interval=4)
    config["resources"] = {"checkpoint_minutes": 0, "real_processes": 2}
    return config


def training_jobs(workdir: Path) -> dict[int, str]:
    """pid -> run file (its --out) of the training processes running in `workdir`:
    the stage, and torchrun's agent and workers."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().decode().split("\0")
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        if "gpu_lease" in args or "--out" not in args:
            continue
        if any("stages.train" in a or "stages/train" in a for a in args):
            if os.path.realpath(cwd) == os.path.realpath(workdir):
                found[int(entry.name)] = args[args.index("--out") + 1]
    return found


def kill_after_first_checkpoint(workdir: Path, run: subprocess.Popen) -> set[str]:
    """SIGKILL every process of each training job once its checkpoint exists; the run
    files of the jobs killed."""
    killed: set[str] = set()
    while run.poll() is None:
        for pid, out in training_jobs(workdir).items():
            if (workdir / paths.run_checkpoint(out)).is_file():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.add(out)
        time.sleep(0.02)
    return killed


def run_files(workdir: Path) -> dict[str, dict]:
    """Every run file, its timings left out."""
    out = {}
    for path in (workdir / "results" / "runs").rglob("seed*.json"):
        record = json.loads(path.read_text())
        for r in record["runs"]:
            r.pop("seconds")
        out[str(path.relative_to(workdir))] = record
    return out


def test_killed_training_jobs_resume_and_write_the_uninterrupted_run_files(tmp_path):
    write_config(tmp_path, resume_config())
    run = subprocess.Popen(
        snakemake_command(tmp_path, *UNTIL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = kill_after_first_checkpoint(tmp_path, run)
    text = run.stdout.read()
    assert run.returncode != 0, text[-3000:]
    assert any("/real/" in out for out in killed), (killed, text[-3000:])
    assert any("/syn-kmeans/" in out for out in killed), (killed, text[-3000:])

    rerun = subprocess.run(snakemake_command(tmp_path, *UNTIL), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for out in killed:
        log = (tmp_path / out.replace("results/runs/", "results/logs/train/")).with_suffix(".log")
        assert "resumed from epoch" in log.read_text(), log.read_text()[-3000:]
    assert not list((tmp_path / "results").rglob("checkpoints/**/*.pt"))  # each removed
    resumed = run_files(tmp_path)

    again = snakemake_command(tmp_path, *UNTIL, "--forcerun", "train", "train_real")
    fresh = subprocess.run(again, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert resumed == run_files(tmp_path)
