"""Fault injection: kills, damaged cache files and a read-only results/ on a tiny workflow.

Each fault must end in a message that says what happened and what to do, and the rerun the
message asks for must leave a complete leaderboard with nothing already computed lost or
redone. One method, one metric, one round and a few epochs keep the DAG at nine small
jobs; it runs once, and each test works on its own copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import job_counts, snakemake_command, write_config

from ddrank_steps.runtime.atomic_write import unwritable_reason

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

SYN_RUNS = "results/runs/digits/syn-kmeans"
DATA = "results/datasets/digits/data.pt"


def fault_config() -> dict:
    """The default config cut to kmeans scored by LRS-hard over one round of 2 epochs."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 1
    protocol = config["protocols"]["digits-dsa"]
    protocol.update(epochs=2, test_interval=1, step_size=1, lr_grid=[0.01])
    config["protocols"] = {"digits-dsa": protocol}
    config["real_protocols"]["digits-ConvNet-3"].update(epochs=1, test_interval=1, step_size=1)
    kmeans = config["methods"]["kmeans"]
    config["methods"] = {"kmeans": {**kmeans, "metrics": {"lrs_hard": {"protocol": "digits-dsa"}}}}
    return config


def snakemake(workdir: Path, *args: str) -> tuple[int, str]:
    cmd = snakemake_command(workdir, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def succeeds(workdir: Path, *args: str) -> str:
    code, text = snakemake(workdir, *args)
    assert code == 0, text[-5000:]
    return text


def planned(workdir: Path) -> dict[str, int]:
    return job_counts(succeeds(workdir, "--dry-run"))


def assert_complete_leaderboard(workdir: Path) -> None:
    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert list(table["method"]) == ["kmeans"]
    assert table["lrs_hard_lrs_mean"].between(0, 100).all()


# what a rerun after a lost training run rewrites: the score made from it and the leaderboard
DOWNSTREAM = {"scores/kmeans/lrs_hard.json", "leaderboard.csv", "report.html"}


def redone_downstream_only(rewritten_files: set[str]) -> bool:
    """Whether only what shows the redone run was rewritten: its score, the leaderboard,
    the report and figures (every figure is drawn from runs or scores)."""
    return all(p in DOWNSTREAM or p.startswith("figures/") for p in rewritten_files)


def mtimes(workdir: Path) -> dict[str, int]:
    """Result files (logs aside) and their modification times, by path under results/."""
    results = workdir / "results"
    return {
        str(p.relative_to(results)): p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.relative_to(results).parts
    }


def rewritten(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """The files of `before` that are gone or rewritten in `after`."""
    return {p for p, t in before.items() if after.get(p) != t}


def train_processes(workdir: Path) -> list[int]:
    """Training processes running in `workdir` (after gpu_lease has exec'd the stage)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"ddrank_steps.stages.train" in cmdline and b"gpu_lease" not in cmdline:
            if os.path.realpath(cwd) == os.path.realpath(workdir):
                found.append(int(entry.name))
    return found


def wait_for_training(workdir: Path, run: subprocess.Popen, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = train_processes(workdir)
        if pids:
            return pids
        if run.poll() is not None:
            raise AssertionError(f"snakemake ended before training:\n{run.stdout.read()[-4000:]}")
        time.sleep(0.05)
    raise AssertionError("no training job started")


# What one lost syn run takes to redo: the run, its score and what shows them (the
# leaderboard, the run's LR curves, the score's terms figure, its group's figure, the report)
REDONE_AFTER_ONE_RUN = {
    "train": 1,
    "score": 1,
    "leaderboard": 1,
    "plot_run": 1,
    "plot_terms": 1,
    "plot_group": 1,
    "report": 1,
    "all": 1,
}


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("faults")
    write_config(workdir, fault_config())
    succeeds(workdir)
    return workdir


def test_a_deleted_result_is_rebuilt_with_what_is_made_from_it(workdir):
    # Snakemake alone says "Nothing to be done" here: the leaderboard is newer than the
    # files that remain. Rule all asks for every cached result, so the run is redone.
    shutil.rmtree(workdir / SYN_RUNS)
    assert planned(workdir) == REDONE_AFTER_ONE_RUN
    succeeds(workdir)
    assert_complete_leaderboard(workdir)
    assert planned(workdir) == {}


def test_a_killed_training_job_is_the_only_one_redone(workdir):
    shutil.rmtree(workdir / SYN_RUNS)
    (workdir / "results" / "leaderboard.csv").unlink()
    before = mtimes(workdir)
    run = subprocess.Popen(
        snakemake_command(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for pid in wait_for_training(workdir, run):
        os.kill(pid, signal.SIGKILL)
    text = run.communicate(timeout=600)[0]
    assert run.returncode != 0
    assert "Error in rule train" in text
    assert not list((workdir / "results" / "runs").rglob("seed*.json.*"))  # no partial file
    succeeds(workdir)
    assert redone_downstream_only(rewritten(before, mtimes(workdir)))  # nothing else redone
    assert (workdir / SYN_RUNS).is_dir()
    assert_complete_leaderboard(workdir)


def test_in_a_slurm_job_the_warning_signal_stops_the_training_not_snakemake(workdir):
    """What SLURM's warning (`--signal=USR1@<lead>`, the SLURM profile) does to a job step:
    SIGUSR1 to every process of it, Snakemake's own among them (the plugin runs one in each
    SLURM job). There Snakemake ignores it (workflow/rules/common.smk: by default it would
    die of it, and its job with it), the training job writes its checkpoint and exits 75,
    and Snakemake reports a failed job, which its retry (or a rerun) resumes.
    tests/test_slurm.py does the same through a real SLURM time limit."""
    config = fault_config()
    config["protocols"]["digits-dsa"].update(epochs=20000, test_interval=10000)
    config["resources"] = {"checkpoint_minutes": 0}  # one after every epoch: resumable at once
    write_config(workdir, config)
    run = subprocess.Popen(
        snakemake_command(workdir, "--show-failed-logs"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a job step's processes
        env={**os.environ, "SLURM_JOB_ID": "1"},  # as inside a SLURM job
    )
    try:
        wait_for_training(workdir, run)
        deadline = time.monotonic() + 120
        while not list((workdir / "results" / "checkpoints").rglob("*.pt")):
            assert time.monotonic() < deadline and run.poll() is None, "no checkpoint written"
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGUSR1)
        text = run.communicate(timeout=300)[0]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate(timeout=60)
    assert run.returncode == 1, (run.returncode, text[-5000:])  # -10: killed by SIGUSR1
    assert "Error in rule train" in text
    assert re.search(r"stopped after epoch \d+ on SIGUSR1", text), text[-5000:]
    assert "exiting with 75" in text
    assert list((workdir / "results" / "checkpoints").rglob("*.pt"))  # kept, to resume from


def test_a_killed_snakemake_leaves_a_stale_lock_that_unlock_clears(workdir):
    shutil.rmtree(workdir / SYN_RUNS)
    shutil.rmtree(workdir / "results" / "runs" / "digits" / "rdm-ipc10")
    before = mtimes(workdir)
    run = subprocess.Popen(
        snakemake_command(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed with its jobs, as a session
    )
    wait_for_training(workdir, run)
    os.kill(run.pid, signal.SIGSTOP)  # still alive: a second run must be told to wait
    code, text = snakemake(workdir)
    assert code != 0
    assert f"another run is active in this directory (pid {run.pid}" in text
    assert "do not use --unlock" in text
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)

    code, text = snakemake(workdir)
    assert code != 0
    assert f"the lock is stale: the run that held it (pid {run.pid}" in text
    assert "snakemake --unlock" in text
    succeeds(workdir, "--unlock")
    succeeds(workdir)
    # what was finished before the run is kept; only what is made from the lost runs is
    # redone (and jobs that were running at the kill, finished or not: Snakemake cannot know)
    assert redone_downstream_only(rewritten(before, mtimes(workdir)))
    assert_complete_leaderboard(workdir)
    assert planned(workdir) == {}


def test_a_truncated_run_file_is_named_and_the_rerun_rebuilds_it(workdir):
    run_file = next((workdir / SYN_RUNS).rglob("seed0.json"))
    relative = run_file.relative_to(workdir)
    run_file.write_bytes(run_file.read_bytes()[:100])
    code, text = snakemake(workdir)
    assert code != 0
    assert f"{relative}: field 'file': is damaged (JSONDecodeError" in text
    assert f"--configfile {workdir / 'config.yaml'} --forcerun {relative}" in text  # pasteable
    log = (workdir / "results" / "logs" / "score" / "kmeans" / "lrs_hard.log").read_text()
    assert str(relative) in log and "Traceback" not in log
    # Snakemake removed the failed score; deleting the damaged file (the other fix) then
    # reruns its job and everything made from it, not "Nothing to be done"
    run_file.unlink()
    assert planned(workdir) == REDONE_AFTER_ONE_RUN
    succeeds(workdir)
    assert json.loads(run_file.read_text())["selected"]["acc"] >= 0
    assert_complete_leaderboard(workdir)


def test_a_truncated_dataset_is_named_and_forcerun_rebuilds_it(workdir):
    data = workdir / DATA
    data.write_bytes(data.read_bytes()[:1000])
    code, text = snakemake(workdir)
    assert code != 0
    assert f"{DATA}: field 'file': cannot be read by torch.load, it is damaged" in text
    assert f"--configfile {workdir / 'config.yaml'} --forcerun {DATA}" in text  # pasteable
    assert "weights_only=False" not in text
    succeeds(workdir, "--forcerun", DATA)
    assert set(torch.load(data, weights_only=True)) >= {"train", "test"}
    assert_complete_leaderboard(workdir)


def make_read_only(folder: Path) -> str:
    """Make `folder` unwritable even for root; return the command that undoes it."""
    folder.chmod(0o555)
    if unwritable_reason(folder) is not None:
        return "chmod"
    # root ignores permission bits; an immutable flag stops it too (ext4, xfs, btrfs)
    proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0 or unwritable_reason(folder) is None:
        folder.chmod(0o755)
        pytest.skip(f"cannot make a folder read-only for this user here: {proc.stderr.strip()}")
    return "chattr"


def test_a_read_only_results_folder_is_one_clear_error(workdir):
    results = workdir / "results"
    (results / "leaderboard.csv").unlink()
    how = make_read_only(results)
    try:
        code, text = snakemake(workdir)
    finally:
        if how == "chattr":
            subprocess.run(["chattr", "-i", str(results)], check=True)
        results.chmod(0o755)
    assert code != 0
    assert "results/ is not writable" in text and "chmod -R u+w results" in text
    assert "Error in rule" not in text  # stopped before any job
    succeeds(workdir)
    assert_complete_leaderboard(workdir)


def test_a_misspelt_method_path_stops_the_run_instead_of_dropping_the_method(workdir):
    config = fault_config()
    config["methods"]["mine"] = {**config["methods"]["kmeans"], "images": "distiled/set.pt"}
    write_config(workdir, config)
    code, text = snakemake(workdir, "--dry-run")
    assert code != 0
    assert "methods.mine.images: 'distiled/set.pt' not found" in text
