"""The workflow on a real SLURM cluster, through sbatch, with the SLURM profile.

start-local-slurm.sh (in ../shared/scripts/local-slurm beside the repository) installs
Debian's slurm-wlm, munge, slurmdbd and MariaDB and starts a one-node cluster on this
machine in about 15 s. The test runs a tiny version of the default workflow with
workflow/profiles/slurm, changed only where a user edits it (partition, account,
GPUs: this node has none) plus a first status poll after 6 s instead of 40 s, and
checks the leaderboard and that every job ran as a SLURM job. It stops only the
daemons it started: a cluster that was up before the test is left running.

Needs root, the scripts, apt-get (or the packages already installed) and
snakemake-executor-plugin-slurm; skips with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SNAKEFILE, write_config
from test_workflow import tiny_config

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO.parent / "shared" / "scripts" / "local-slurm"
STATE = Path(os.environ.get("LOCAL_SLURM_STATE", "/tmp/local-slurm"))
DAEMONS = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")  # stop order
MARKER = "# written by start-local-slurm.sh"
RUN_TIMEOUT_S = 480  # snakemake gets SIGINT after this (it takes ~2-3 min here)

pytestmark = pytest.mark.slurm


def skip_reason() -> str | None:
    if not (SCRIPTS / "start-local-slurm.sh").is_file():
        return f"no local SLURM scripts at {SCRIPTS}"
    if os.geteuid() != 0:
        return "needs root: start-local-slurm.sh installs packages and starts daemons"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "no apt-get to install slurm-wlm, and it is not installed"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.is_file() and MARKER not in conf.read_text(errors="replace"):
        return f"{conf} belongs to a real SLURM installation; not replacing it"
    return None


def running_daemons() -> dict[str, int]:
    """The daemons start-local-slurm.sh started that are alive: name -> pid."""
    alive = {}
    for name in DAEMONS:
        try:
            pid = int((STATE / "pids" / f"{name}.pid").read_text())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            continue
        if comm == name and stat != "Z":
            alive[name] = pid
    return alive


def stop_by_pid(daemons: dict[str, int], wait_s: float = 20.0) -> None:
    """TERM (then KILL) exactly these daemons, each while its pid still names it."""
    for name in DAEMONS:
        pid = daemons.get(name)
        if pid is None:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if running_daemons().get(name) != pid:
                break
            os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while running_daemons().get(name) == pid and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.fixture(scope="module")
def local_slurm():
    """A one-node SLURM cluster; yields its partition. Stops what it started."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    before = running_daemons()
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "start-local-slurm.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LOCAL_SLURM_STATE": str(STATE)},
    )
    started = {n: p for n, p in running_daemons().items() if before.get(n) != p}
    try:
        if proc.returncode != 0:
            if "apt-get install failed" in proc.stderr:
                pytest.skip(f"could not install slurm-wlm: {proc.stderr[-1500:]}")
            pytest.fail(f"start-local-slurm.sh failed:\n{proc.stdout}\n{proc.stderr}")
        print(f"local SLURM up in {time.monotonic() - t0:.1f}s (already up: {sorted(before)})")
        partition = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        yield partition.rstrip("*")
    finally:
        t0 = time.monotonic()
        if not before:  # the whole cluster is ours: the script stops exactly that
            subprocess.run(
                ["bash", str(SCRIPTS / "stop-local-slurm.sh")],
                env={**os.environ, "LOCAL_SLURM_STATE": str(STATE)},
                capture_output=True,
                timeout=300,
            )
        else:
            stop_by_pid(started)
        print(f"stopped {sorted(started)} in {time.monotonic() - t0:.1f}s")


def write_test_profile(dest: Path, partition: str) -> Path:
    """workflow/profiles/slurm with the lines a user edits set for this one-node cluster."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = partition
    profile["default-resources"].pop("slurm_account", None)
    for rule in ("train", "train_real", "soft_labels"):  # the rules that would use a GPU
        resources = profile["set-resources"][rule]
        resources.pop("gpu_model", None)
        resources.update(slurm_partition=partition, gpu=0)  # this node has none
    profile["slurm-init-seconds-before-status-checks"] = 6  # first poll after 6 s, not 40
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def test_tiny_workflow_runs_through_sbatch_to_a_complete_leaderboard(local_slurm, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny_config()
    # one method and LRS-hard keep it short; the soft-label paths run in test_workflow
    kmeans = config["methods"]["kmeans"]
    kmeans["metrics"] = {"lrs_hard": kmeans["metrics"]["lrs_hard"]}
    config["methods"] = {"kmeans": kmeans}
    # slots of a workstation GPU play no part under SLURM (each job gets its own devices
    # there, and the profile's gpu requests stay whole GPUs): set, it changes nothing
    config["resources"] = {"jobs_per_gpu": 4}
    write_config(workdir, config)
    profile = write_test_profile(tmp_path / "profile", local_slurm)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        str(profile),
    ]
    t0 = time.monotonic()
    # SIGINT, not SIGTERM: on SIGINT the plugin cancels its SLURM jobs and exits.
    proc = subprocess.run(
        ["timeout", "-s", "INT", "-k", "30", str(RUN_TIMEOUT_S), *cmd],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S + 60,
    )
    print(f"workflow through SLURM in {time.monotonic() - t0:.1f}s")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake exited {proc.returncode}:\n{text[-8000:]}"

    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert list(table["method"]) == ["kmeans"]
    assert table["lrs_hard_lrs_mean"].between(0, 100).all()
    assert (table["lrs_hard_rounds"] == 2).all()
    for col in ("lrs_hard_real-hard_acc_mean", "lrs_hard_rdm-any_acc_mean"):
        assert table[col].between(0, 1).all(), col

    # Every job went through sbatch: the small ones as two group jobs, training alone
    # (2 rounds x syn, rdm and real-hard; rule_train_real's logs count as rule_train).
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/([^/]+)/", text)
    kinds = sorted(kind.split("_")[0] + "_" + kind.split("_")[1] for _, kind in submitted)
    assert kinds == ["group_scores", "group_sets"] + ["rule_train"] * 6, text[-4000:]
    ids = ",".join(jobid for jobid, _ in submitted)
    states = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ids, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(states) == len(submitted) and all(s.endswith("|COMPLETED") for s in states), states

    again = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


def slurm_command(workdir: Path, profile: Path, timeout_s: int) -> list[str]:
    """Snakemake on the workflow in `workdir` with `profile`, SIGINT after `timeout_s` (the
    plugin then cancels its jobs)."""
    return [
        *("timeout", "-s", "INT", "-k", "30", str(timeout_s)),
        *(sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)),
        *("--directory", str(workdir), "--configfile", str(workdir / "config.yaml")),
        *("--workflow-profile", str(profile)),
    ]


def run_through_slurm(workdir: Path, profile: Path, timeout_s: int = RUN_TIMEOUT_S) -> str:
    """The workflow in `workdir` through sbatch with `profile`; its output, once it ended
    well (SIGINT after `timeout_s`: the plugin then cancels its jobs)."""
    proc = subprocess.run(
        slurm_command(workdir, profile, timeout_s),
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake exited {proc.returncode}:\n{text[-8000:]}"
    return text


def one_long_syn_run(tmp_path: Path, epochs: int, resources: dict) -> Path:
    """A work folder whose config trains one method's syn set at one LR for `epochs`
    epochs (one evaluation round, LRS-hard only): the job the signal tests cut."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny_config()
    config["num_eval"] = 1
    kmeans = config["methods"]["kmeans"]
    kmeans["metrics"] = {"lrs_hard": kmeans["metrics"]["lrs_hard"]}
    config["methods"] = {"kmeans": kmeans}
    config["protocols"]["digits-dsa"].update(epochs=epochs, test_interval=1000, lr_grid=[0.01])
    config["resources"] = resources
    write_config(workdir, config)
    return workdir


def test_a_training_job_cut_by_its_time_limit_resumes_on_its_retry(local_slurm, tmp_path):
    """Runs of more epochs than fit in a minute, even on an idle machine, under a 1-min
    time limit: SLURM's warning signal (`--signal=USR1@<lead>` from the profile) makes
    each checkpoint and exit with 75, while the job step's Snakemake, which ignores it
    (workflow/rules/common.smk), reports a plain failure; the retries resume each run from
    the epoch it stopped at until it is done.

    SLURM checks time limits every 30 s and warns at the first check at most lead + 30 s
    before the end ("may be sent up to 60 seconds earlier", man sbatch): with a 1-s lead
    the warning comes 29-59 s into the job, and the time limit's kill at least 30 s after
    it. An attempt thus trains 25-55 s, at 100-250 epochs/s on this 2-core machine (two
    runs side by side; the fewer beside other work): 15,000 epochs are always cut at least
    once (at most ~12,000 fit in an attempt when idle), took 2 attempts idle and 3-4
    beside other work in the runs measured, and need at most 6 at 100 epochs/s. The
    profile's 3 retries assume a time limit near a job's runtime; here they are raised to
    6, and the run's timeout with them."""
    workdir = one_long_syn_run(tmp_path, 15000, {"train_runtime": 1, "checkpoint_minutes": 0.1})
    profile = write_test_profile(tmp_path / "profile", local_slurm)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    for rule in ("train", "train_real"):
        assert "--signal=USR1@" in settings["set-resources"][rule]["slurm_extra"]
        settings["set-resources"][rule]["slurm_extra"] = "'--signal=USR1@1'"
    settings["retries"] = 6
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    text = run_through_slurm(workdir, profile, timeout_s=900)

    # Each cut attempt stopped on the warning, wrote its checkpoint and exited with 75 (its
    # log, shown by show-failed-logs), and a retry went on from that very epoch. Neither
    # Snakemake in the job died of the signal ("srun: error: ...: User defined signal 1").
    assert "User defined signal" not in text, text[-6000:]
    stopped = re.findall(
        r"stopped after epoch (\d+) on SIGUSR1\S* the checkpoint is written; "
        r"exiting with 75",
        text,
    )
    assert stopped, text[-6000:]
    # the last attempt of each run succeeded: its log is not in the output, but on disk
    logs = sorted((workdir / "results" / "logs" / "train" / "digits").glob("*/*/seed*.log"))
    last_attempts = "".join(log.read_text() for log in logs)
    for epoch in stopped:
        assert f"resumed from epoch {epoch} " in text + last_attempts, (epoch, text[-6000:])
    syn_log = next(log for log in logs if "syn-kmeans" in str(log))
    assert "resumed from epoch" in syn_log.read_text(), text[-6000:]
    # a resubmission: more train jobs went through sbatch than the 3 runs (real, syn, rdm)
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/rule_train", text)
    assert len(submitted) > 3, text[-6000:]
    table = pd.read_csv(workdir / "results" / "leaderboard.csv")
    assert list(table["method"]) == ["kmeans"]
    assert not list((workdir / "results").rglob("checkpoints/**/*.pt"))


def test_a_training_job_preempted_with_requeue_resumes_when_slurm_restarts_it(
    local_slurm, tmp_path
):
    """Preemption with requeue, as `scontrol requeue` does it: SLURM sends SIGTERM to every
    process of the job's steps (SIGKILL KillWait later) and puts the job back in the queue
    under the same id. The training process checkpoints at the end of its epoch and exits
    with 75; the job step's Snakemake, on SIGTERM, waits for it ("Will exit after
    finishing currently running jobs"). SLURM runs the job again and it resumes from that
    epoch; the plugin sees only PENDING/RUNNING then COMPLETED: with `--slurm-requeue` and
    no retries the run ends well, with no resubmission. SLURM holds a requeued job ~2 min
    (BeginTime); the test starts it at once. 8,000 epochs take 30-80 s here: the requeue
    comes once the run's first checkpoint (every 6 s) is written, well before its end."""
    workdir = one_long_syn_run(tmp_path, 8000, {"checkpoint_minutes": 0.1})
    profile = write_test_profile(tmp_path / "profile", local_slurm)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings.update({"retries": 0, "slurm-requeue": True})
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    output = tmp_path / "snakemake.out"
    with output.open("w") as out:
        proc = subprocess.Popen(
            slurm_command(workdir, profile, RUN_TIMEOUT_S), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        log = checkpoint = None
        while checkpoint is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
            checkpoint = next((workdir / "results").glob("checkpoints/*/syn-*/*/seed0.pt"), None)
        assert checkpoint is not None, output.read_text()[-6000:]
        jobid = re.search(
            r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_train/\w+_syn-",
            output.read_text(),
        ).group(1)
        subprocess.run(["scontrol", "requeue", jobid], check=True)
        log = next((workdir / "results" / "logs" / "train").glob("*/syn-*/*/seed0.log"))
        first = ""
        while time.monotonic() < deadline:  # the first attempt has stopped, SLURM holds it
            state = subprocess.run(
                ["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True, text=True
            ).stdout.strip()
            first = log.read_text()
            if state == "PENDING" and "exiting with 75" in first:
                break
            time.sleep(0.5)
        subprocess.run(["scontrol", "update", f"jobid={jobid}", "StartTime=now"], check=True)
        proc.wait(timeout=RUN_TIMEOUT_S + 60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=90)
    text = output.read_text()
    assert proc.returncode == 0, f"snakemake exited {proc.returncode}:\n{text[-8000:]}"

    stopped = re.search(r"stopped after epoch (\d+) on SIGTERM\S* the checkpoint is written", first)
    assert stopped, first[-3000:]
    assert f"resumed from epoch {stopped.group(1)} " in log.read_text(), log.read_text()[-3000:]
    # one SLURM job, run twice; Snakemake saw no failure and submitted nothing again
    states = subprocess.run(
        ["sacct", "-D", "-X", "-n", "-P", "-j", jobid, "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert states == ["REQUEUED", "COMPLETED"], states
    assert "Error in rule" not in text, text[-6000:]
    assert len(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_train", text)) == 3
    assert not list((workdir / "results").rglob("checkpoints/**/*.pt"))
