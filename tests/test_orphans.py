"""No orphans, no double training: a job stops with the run that started it, an orphan's
file is never published, and jobs of an earlier run still alive stop a new run (and an
unlock) with a message that says so instead of advising --unlock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import snakemake_command, write_config

from ddrank_steps.runtime import atomic_write, orphans, run_lock

REPO = Path(__file__).resolve().parents[1]


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether process `pid` has ended (reaped or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_job(folder: Path) -> subprocess.Popen:
    """A process that looks like a train job running in `folder`."""
    code = "import time; time.sleep(120)"
    return subprocess.Popen(
        [sys.executable, "-c", code, "-m", "ddrank_steps.stages.train"], cwd=folder
    )


# --- an orphan's output -------------------------------------------------------------------


def test_a_job_whose_run_is_gone_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(orphans, "_master", (dead_pid(), None))
    target = tmp_path / "seed0.json"
    with pytest.raises(orphans.OrphanError, match="is gone, so this job is an orphan"):
        atomic_write.write_json(target, {"acc": 0.5})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    monkeypatch.setattr(orphans, "_master", (os.getpid(), orphans._start_time(os.getpid())))
    atomic_write.write_json(target, {"acc": 0.5})
    assert json.loads(target.read_text()) == {"acc": 0.5}


def test_a_stage_started_after_its_run_died_stops_at_once():
    env = {**os.environ, "DDRANK_MASTER_PID": str(dead_pid()), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", "import ddrank_steps.stages; print('ran')"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "ran" not in proc.stdout
    assert "the run that started this job" in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal")
def test_a_stage_stops_when_the_process_that_started_it_is_killed():
    """The master (here a plain Python process) started a stage and dies by SIGKILL: the
    stage gets SIGTERM from the kernel and ends."""
    child = (
        "import os, subprocess, sys; "
        "env = {**os.environ, 'DDRANK_MASTER_PID': str(os.getpid())}; "
        "job = subprocess.Popen([sys.executable, '-c', "
        "'import ddrank_steps.stages, time; time.sleep(120)'], env=env); "
        "print(job.pid, flush=True); job.wait()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    master = subprocess.Popen(
        [sys.executable, "-c", child], env=env, stdout=subprocess.PIPE, text=True
    )
    job = int(master.stdout.readline())
    time.sleep(1.0)  # the job has imported the package and set its parent-death signal
    assert not gone(job, 0.1)
    master.kill()
    master.wait()
    assert gone(job)


# --- the jobs of an earlier run -----------------------------------------------------------


def stale_lock(folder: Path) -> None:
    """A lock and the record of a run that is gone, as `kill -9` of Snakemake leaves them."""
    (folder / run_lock.LOCK_DIR).mkdir(parents=True)
    (folder / run_lock.LOCK_DIR / "0.input.lock").write_text("")
    info = {"pid": dead_pid(), "host": run_lock.socket.gethostname(), "started": 0}
    (folder / run_lock.RUN_FILE).write_text(json.dumps(info))


def test_live_jobs_of_a_dead_run_are_named_and_no_unlock_is_advised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stale_lock(tmp_path)
    assert "the lock is stale" in run_lock.lock_report()
    assert run_lock.unlock_refusal() is None and run_lock.live_jobs_refusal() is None
    job = fake_job(tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not run_lock.live_jobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid, _ in run_lock.live_jobs()] == [job.pid]
        report = run_lock.lock_report()
        assert "jobs it started still run here" in report and f"pid {job.pid}" in report
        assert "Do not use --unlock while they run" in report and f"kill {job.pid}" in report
        assert "the lock is stale" not in report
        assert f"kill {job.pid}" in run_lock.unlock_refusal()
        assert "would train the same jobs twice" in run_lock.live_jobs_refusal()
        assert run_lock.live_jobs(tmp_path.parent) == []  # another folder's jobs are not ours
    finally:
        job.kill()
        job.wait()
    assert run_lock.live_jobs() == []


# --- the workflow -------------------------------------------------------------------------


def long_config() -> dict:
    """The default config cut to one method, one round, one LR and many epochs: its train
    jobs run long enough to be killed."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 1
    protocol = config["protocols"]["digits-dsa"]
    protocol.update(epochs=2000, test_interval=1000, step_size=1000, lr_grid=[0.01])
    config["protocols"] = {"digits-dsa": protocol}
    config["real_protocols"]["digits-ConvNet-3"].update(epochs=2000, test_interval=1000)
    kmeans = config["methods"]["kmeans"]
    config["methods"] = {"kmeans": {**kmeans, "metrics": {"lrs_hard": {"protocol": "digits-dsa"}}}}
    return config


def train_jobs(workdir: Path) -> list[int]:
    return [pid for pid, cmd in run_lock.live_jobs(workdir) if "ddrank_steps.stages.train" in cmd]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.workflow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal, /proc")
def test_killing_snakemake_stops_its_jobs_and_unlock_waits_for_live_ones(tmp_path):
    write_config(tmp_path, long_config())
    run = subprocess.Popen(
        snakemake_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while not (jobs := train_jobs(tmp_path)) and time.monotonic() < deadline:
        assert run.poll() is None, run.stdout.read()[-4000:]
        time.sleep(0.05)
    assert jobs, "no training job started"
    # no shell between Snakemake and the job: killing "the wrapper" is killing the job
    assert {parent_of(pid) for pid in jobs} == {run.pid}
    run.kill()  # SIGKILL: no cleanup, the lock stays
    run.communicate(timeout=60)
    assert all(gone(pid) for pid in jobs), "a job outlived the killed Snakemake"
    assert not list((tmp_path / "results" / "runs").rglob("seed*.json"))

    job = fake_job(tmp_path)  # a job of the dead run that has not stopped yet
    try:
        proc = snakemake(tmp_path, "--unlock")
        assert proc.returncode != 0
        text = proc.stdout + proc.stderr
        assert "not unlocking: jobs of an earlier run are still running" in text, text[-3000:]
        assert f"kill {job.pid}" in text
        assert (tmp_path / run_lock.LOCK_DIR).is_dir() and any(
            (tmp_path / run_lock.LOCK_DIR).iterdir()
        )
        assert "Do not use --unlock while they run" in text  # the parse-time lock report
    finally:
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    assert snakemake(tmp_path, "--unlock").returncode == 0  # no job left: unlocking is safe

    job = fake_job(tmp_path)  # unlocked, and yet a job still runs (e.g. a --nolock run's)
    try:
        proc = snakemake(tmp_path)
    finally:
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "jobs of an earlier run are still running in this directory" in text, text[-3000:]
    assert "Error in rule" not in text  # refused before any job
