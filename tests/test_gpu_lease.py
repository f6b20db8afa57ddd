"""The workstation GPU lease: concurrent jobs get disjoint devices, a job waits for a
free one, a killed job frees its devices, and SLURM or a user's choice pass through.

Every lease runs as its own process (`python -m ddrank_steps.runtime.gpu_lease`), as under
Snakemake, on a fake machine whose devices are DDRANK_GPUS, with its own lock dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddrank_steps.runtime import gpu_lease

REPO = Path(__file__).resolve().parents[1]

# The leased command: writes the CUDA_VISIBLE_DEVICES it sees, then holds its lease
# until a file named <out>.release appears.
JOB = """
import os, sys, time
out = sys.argv[1]
with open(out + ".tmp", "w") as f:
    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
os.replace(out + ".tmp", out)
while not os.path.exists(out + ".release"):
    time.sleep(0.05)
"""


@pytest.fixture
def machine(tmp_path):
    """A fake 2-GPU machine: environment for the lease processes, and their lock dir."""
    outside = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "DDRANK_JOBS_PER_GPU")
    env = {k: v for k, v in os.environ.items() if k not in outside}
    env.update(
        DDRANK_GPUS="0,1",
        DDRANK_GPU_LEASE_DIR=str(tmp_path / "locks"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    )
    (tmp_path / "job.py").write_text(JOB)
    return env


def start(tmp_path: Path, env: dict, name: str, gpus: int = 1, *opts: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "ddrank_steps.runtime.gpu_lease",
        "--gpus",
        str(gpus),
        "--poll",
        "0.05",
    ]
    cmd += [*opts, "--", sys.executable, str(tmp_path / "job.py"), str(tmp_path / name)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def seen(tmp_path: Path, name: str, timeout: float = 20.0) -> str:
    """The CUDA_VISIBLE_DEVICES job `name` ran with, once it has started."""
    path = tmp_path / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"job {name} did not start within {timeout}s"
        time.sleep(0.05)
    return path.read_text()


def release(tmp_path: Path, proc: subprocess.Popen, name: str) -> str:
    (tmp_path / f"{name}.release").touch()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_two_concurrent_leases_get_disjoint_devices_and_a_third_waits(tmp_path, machine):
    a = start(tmp_path, machine, "a")
    b = start(tmp_path, machine, "b")
    ids = {seen(tmp_path, "a"), seen(tmp_path, "b")}
    assert ids == {"0", "1"}

    c = start(tmp_path, machine, "c")
    time.sleep(1.5)  # both devices are leased: c must not start
    assert not (tmp_path / "c").exists()
    assert c.poll() is None

    freed = seen(tmp_path, "a")
    release(tmp_path, a, "a")
    assert seen(tmp_path, "c") == freed  # c took the device a gave back
    err = release(tmp_path, c, "c")
    assert "waiting for 1 free GPU(s) of 2" in err and "busy: 0 (pid" in err
    assert f"CUDA_VISIBLE_DEVICES={freed} " in err
    release(tmp_path, b, "b")


def test_a_job_asking_for_two_gets_both_and_blocks_the_others(tmp_path, machine):
    a = start(tmp_path, machine, "a", 2)
    assert seen(tmp_path, "a") == "0,1"
    b = start(tmp_path, machine, "b", 1, "--timeout", "0.5")
    _, err = b.communicate(timeout=20)
    assert b.returncode == 2
    assert "no 1 free GPU(s) of 2 after 0.5s" in err
    assert "Traceback" not in err
    assert f"pid {a.pid}" in err  # names the holder (exec kept the pid)
    release(tmp_path, a, "a")


def test_a_killed_job_frees_its_devices(tmp_path, machine):
    a = start(tmp_path, machine, "a", 2)
    seen(tmp_path, "a")
    a.send_signal(signal.SIGKILL)  # the leased command itself: the lease exec'd into it
    a.wait(timeout=20)
    b = start(tmp_path, machine, "b", 2, "--timeout", "5")
    assert seen(tmp_path, "b") == "0,1"
    release(tmp_path, b, "b")


@pytest.mark.parametrize(
    ("gpus", "extra_env", "expected"),
    [
        (0, {}, "<unset>"),  # no GPU asked for: devices untouched
        (1, {"SLURM_JOB_ID": "42"}, "<unset>"),  # SLURM assigns them itself
        (1, {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "3"}, "3"),
        (2, {"CUDA_VISIBLE_DEVICES": "1"}, "1"),  # the user chose: kept as it is
    ],
)
def test_passes_through_unchanged(tmp_path, machine, gpus, extra_env, expected):
    env = {**machine, **extra_env, "DDRANK_GPUS": ""}  # no devices: a lease would fail
    proc = start(tmp_path, env, "a", gpus)
    assert seen(tmp_path, "a") == expected
    err = release(tmp_path, proc, "a")
    assert "gpu_lease" not in err
    assert not (tmp_path / "locks").exists()


def test_more_gpus_than_the_machine_has_is_a_one_line_error(tmp_path, machine):
    proc = start(tmp_path, machine, "a", 3)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "3 GPU(s) asked for, but this machine has 2 to share (0, 1)" in err
    assert "Traceback" not in err


def test_counts_devices_with_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\n"
        "echo 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n"
    )
    fake.chmod(0o755)
    env = {"PATH": str(fake.parent)}
    assert gpu_lease.machine_devices(env) == (["0", "1"], "nvidia-smi -L")
    assert gpu_lease.machine_devices({**env, "DDRANK_GPUS": "2, 3"}) == (["2", "3"], "DDRANK_GPUS")
    assert gpu_lease.machine_devices({**env, "DDRANK_GPUS": ""}) == ([], "DDRANK_GPUS")


def test_command_line_needs_a_command(tmp_path, machine):
    proc = subprocess.run(
        [sys.executable, "-m", "ddrank_steps.runtime.gpu_lease", "--gpus", "1"],
        env=machine,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "give the command after --" in proc.stderr


# --- several jobs per GPU (resources.jobs_per_gpu): slots of one device ----------------------


def test_n_jobs_share_one_device_with_n_slots_and_never_n_plus_one(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0"}
    shared = ("--jobs-per-gpu", "3")
    jobs = {name: start(tmp_path, env, name, 1, *shared) for name in "abc"}
    assert [seen(tmp_path, name) for name in "abc"] == ["0", "0", "0"]

    d = start(tmp_path, env, "d", 1, *shared)
    late = start(tmp_path, env, "late", 1, *shared, "--timeout", "0.5")
    _, err = late.communicate(timeout=20)
    assert late.returncode == 2
    assert "no 1 free slot(s) of one GPU (3 per GPU) of 1 after 0.5s" in err
    assert all(f"pid {jobs[name].pid}" in err for name in "abc")  # every holder named
    assert not (tmp_path / "d").exists() and d.poll() is None  # a fourth never runs

    release(tmp_path, jobs.pop("b"), "b")
    assert seen(tmp_path, "d") == "0"  # in the slot b gave back
    err = release(tmp_path, d, "d")
    assert "waiting for 1 free slot(s) of one GPU (3 per GPU) of 1" in err
    assert "CUDA_VISIBLE_DEVICES=0 (1 of 3 slots of 1 of 1 GPUs" in err
    for name, proc in jobs.items():
        release(tmp_path, proc, name)


def test_a_whole_device_job_and_shared_jobs_exclude_each_other(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0"}
    a = start(tmp_path, env, "a", 1, "--jobs-per-gpu", "2")
    seen(tmp_path, "a")
    whole = start(tmp_path, env, "whole", 2, "--jobs-per-gpu", "2")  # 2 slots of 2: all of it
    time.sleep(1.5)  # one slot is free, but a whole-device job needs every slot
    assert not (tmp_path / "whole").exists() and whole.poll() is None
    release(tmp_path, a, "a")
    assert seen(tmp_path, "whole") == "0"

    # and while it runs no shared job gets in, whatever slot count that job was given
    for slots in ("2", "4"):
        b = start(tmp_path, env, "b", 1, "--jobs-per-gpu", slots, "--timeout", "0.5")
        _, err = b.communicate(timeout=20)
        assert b.returncode == 2 and f"busy: 0 (pid {whole.pid}" in err, err
    release(tmp_path, whole, "whole")


def test_a_whole_gpu_lease_of_another_run_keeps_shared_jobs_off_its_device(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0"}
    whole = start(tmp_path, env, "whole", 1)  # jobs_per_gpu 1: one whole GPU
    seen(tmp_path, "whole")
    b = start(tmp_path, env, "b", 1, "--jobs-per-gpu", "4", "--timeout", "0.5")
    _, err = b.communicate(timeout=20)
    assert b.returncode == 2, err
    release(tmp_path, whole, "whole")


def test_shared_jobs_fill_one_device_before_the_next(tmp_path, machine):
    shared = ("--jobs-per-gpu", "2")
    a = start(tmp_path, machine, "a", 1, *shared)
    assert seen(tmp_path, "a") == "0"
    b = start(tmp_path, machine, "b", 1, *shared)
    assert seen(tmp_path, "b") == "0"  # the busy device first: device 1 stays whole
    whole = start(tmp_path, machine, "whole", 2, *shared)
    assert seen(tmp_path, "whole") == "1"
    c = start(tmp_path, machine, "c", 1, *shared, "--timeout", "0.5")
    _, err = c.communicate(timeout=20)
    assert c.returncode == 2, err  # two slots on 0, device 1 whole: nothing left
    for name, proc in (("a", a), ("b", b), ("whole", whole)):
        release(tmp_path, proc, name)


def test_a_job_may_take_several_slots_of_one_device(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0"}
    a = start(tmp_path, env, "a", 2, "--jobs-per-gpu", "3")  # 2 of 3 slots: shared
    b = start(tmp_path, env, "b", 1, "--jobs-per-gpu", "3")
    assert (seen(tmp_path, "a"), seen(tmp_path, "b")) == ("0", "0")
    c = start(tmp_path, env, "c", 1, "--jobs-per-gpu", "3", "--timeout", "0.5")
    _, err = c.communicate(timeout=20)
    assert c.returncode == 2, err
    last = err.strip().splitlines()[-1]  # the error; a waiting line came before it
    assert last.count(f"(pid {a.pid}") == 2 and last.count(f"(pid {b.pid}") == 1, err
    release(tmp_path, a, "a")
    release(tmp_path, b, "b")


def test_the_slot_count_may_come_from_the_environment(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0", "DDRANK_JOBS_PER_GPU": "2"}  # as the workflow sets
    a = start(tmp_path, env, "a", 1)
    b = start(tmp_path, env, "b", 1)
    assert (seen(tmp_path, "a"), seen(tmp_path, "b")) == ("0", "0")
    c = start(tmp_path, env, "c", 1, "--timeout", "0.5")
    _, err = c.communicate(timeout=20)
    assert c.returncode == 2 and "(2 per GPU)" in err, err
    release(tmp_path, a, "a")
    release(tmp_path, b, "b")


def test_a_killed_job_frees_its_slot(tmp_path, machine):
    env = {**machine, "DDRANK_GPUS": "0"}
    shared = ("--jobs-per-gpu", "2")
    a = start(tmp_path, env, "a", 1, *shared)
    b = start(tmp_path, env, "b", 1, *shared)
    seen(tmp_path, "a"), seen(tmp_path, "b")
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=20)
    c = start(tmp_path, env, "c", 1, *shared, "--timeout", "5")
    assert seen(tmp_path, "c") == "0"
    release(tmp_path, c, "c")
    release(tmp_path, b, "b")


@pytest.mark.parametrize(
    ("gpus", "jobs_per_gpu", "whole", "slots"),
    [(1, 1, 1, 0), (2, 1, 2, 0), (1, 4, 0, 1), (3, 4, 0, 3), (4, 4, 1, 0), (8, 4, 2, 0)],
)
def test_a_gpu_resource_is_whole_devices_or_slots_of_one(gpus, jobs_per_gpu, whole, slots):
    request = gpu_lease.request_of(gpus, jobs_per_gpu)
    assert (request.whole, request.slots) == (whole, slots)


@pytest.mark.parametrize(
    ("args", "env_slots", "message"),
    [
        (("--gpus", "1", "--jobs-per-gpu", "0"), "", "--jobs-per-gpu 0: it must be 1 or more"),
        (("--gpus", "1"), "0", "--jobs-per-gpu 0: it must be 1 or more"),
        (("--gpus", "1"), "two", "DDRANK_JOBS_PER_GPU='two': give a whole number, 1 or more"),
        (
            ("--gpus", "6", "--jobs-per-gpu", "4"),
            "",
            "--gpus 6 with 4 jobs per GPU is neither a share of one GPU",
        ),
    ],
)
def test_a_request_that_cannot_be_met_is_a_one_line_error(
    tmp_path, machine, args, env_slots, message
):
    proc = subprocess.run(
        [sys.executable, "-m", "ddrank_steps.runtime.gpu_lease", *args, "--", "true"],
        env={**machine, "DDRANK_JOBS_PER_GPU": env_slots},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
