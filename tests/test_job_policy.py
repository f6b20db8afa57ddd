"""How a training job uses the machine (runtime/job_policy.py): its GPUs in slots or whole
devices, on a workstation and under SLURM; its launcher and threads; whether its LRs train
together; and the shell prefix every job runs under."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddrank_steps.runtime import gpu_lease, job_policy

REPO = Path(__file__).resolve().parents[1]


def resources(**changes) -> dict:
    """The schema's defaults, changed."""
    defaults = {
        "train_gpus": 0,
        "jobs_per_gpu": 1,
        "real_processes": 1,
        "train_threads": 1,
        "concurrent_lrs": "auto",
    }
    return {**defaults, **changes}


# --- GPUs -------------------------------------------------------------------------------


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_a_one_gpu_job_takes_one_slot_whatever_the_slots_per_gpu(slots):
    res = resources(train_gpus=1, jobs_per_gpu=slots)
    for local in (True, False):
        assert job_policy.one_process_gpus(res, local) == 1
        assert job_policy.train_gpus(res, 1, local) == 1
    # the lease reads that count as one slot of one device (whole with one slot per GPU)
    request = gpu_lease.request_of(1, slots)
    assert (request.whole, request.slots) == ((1, 0) if slots == 1 else (0, 1))


@pytest.mark.parametrize("slots", [1, 3])
def test_whole_gpu_jobs_take_all_slots_of_each_device_on_a_workstation(slots):
    res = resources(train_gpus=2, real_processes=4, jobs_per_gpu=slots)
    assert job_policy.one_process_gpus(res, local=True) == 2 * slots
    assert job_policy.torchrun_gpus(res, local=True) == 4 * slots
    assert job_policy.train_gpus(res, 4, local=True) == 4 * slots  # a set under torchrun
    assert job_policy.train_gpus(res, 1, local=True) == 2 * slots
    assert gpu_lease.request_of(4 * slots, slots).whole == 4  # whole devices to the lease


def test_slurm_counts_whole_gpus_whatever_jobs_per_gpu():
    res = resources(train_gpus=2, real_processes=4, jobs_per_gpu=4)
    assert job_policy.slots_per_gpu(res, local=False) == 1
    assert job_policy.slots_per_gpu(res, local=True) == 4
    assert job_policy.one_process_gpus(res, local=False) == 2
    assert job_policy.torchrun_gpus(res, local=False) == 4
    assert job_policy.train_gpus(res, 4, local=False) == 4
    assert job_policy.one_process_gpus(resources(train_gpus=1, jobs_per_gpu=4), False) == 1


def test_no_gpus_on_the_cpu():
    res = resources(train_gpus=0, real_processes=2, jobs_per_gpu=4)
    for local in (True, False):
        assert job_policy.one_process_gpus(res, local) == 0
        assert job_policy.torchrun_gpus(res, local) == 0
        assert job_policy.train_gpus(res, 2, local) == 0


# --- processes, launcher, threads -------------------------------------------------------


def test_one_process_runs_the_stage_directly_and_more_under_torchrun():
    assert job_policy.launcher(1) == "-m ddrank_steps.stages.train"
    assert job_policy.launcher(2) == (
        "-m torch.distributed.run --standalone --nnodes 1 --nproc-per-node 2"
        " -m ddrank_steps.stages.train"
    )


def test_processes_are_those_the_run_protocol_is_keyed_for():
    assert job_policy.processes_of({"model": "ConvNet-3"}) == 1
    assert job_policy.processes_of({"model": "ConvNet-3", "processes": 4}) == 4


def test_threads_are_train_threads_for_each_process():
    res = resources(train_threads=3)
    assert job_policy.threads(res, 1) == 3
    assert job_policy.threads(res, 4) == 12


# --- concurrent LRs ---------------------------------------------------------------------


@pytest.mark.parametrize(("config", "setting"), [("auto", "auto"), (True, "on"), (False, "off")])
def test_the_config_setting_becomes_the_stage_flag(config, setting):
    assert job_policy.concurrent_lrs_setting(resources(concurrent_lrs=config)) == setting
    assert setting in job_policy.CONCURRENT_LRS


@pytest.mark.parametrize(
    ("setting", "device", "processes", "streamed", "lrs", "together"),
    [
        # auto: on a GPU in one process with the set in memory, else off
        ("auto", "cuda", 1, False, None, True),
        ("auto", "cpu", 1, False, None, False),
        ("auto", "cuda", 1, True, None, False),
        ("auto", "cuda", 2, False, None, False),
        # on and off, whatever the device
        ("on", "cpu", 1, False, None, True),
        ("on", "cuda", 1, True, None, True),
        ("off", "cuda", 1, False, None, False),
        # never under DDP, never for a grid of one LR
        ("on", "cuda", 2, False, None, False),
        ("on", "cpu", 1, False, 1, False),
        ("on", "cpu", 1, False, 3, True),
        ("auto", "cuda", 1, False, 1, False),
        ("off", "cuda", 1, False, 3, False),
    ],
)
def test_the_lrs_train_together_decision(setting, device, processes, streamed, lrs, together):
    got = job_policy.lrs_train_together(setting, device, processes, streamed, lrs)
    assert got is together


def test_an_unknown_setting_is_an_error():
    with pytest.raises(ValueError, match="concurrent_lrs is 'yes'; valid values: auto, on, off"):
        job_policy.lrs_train_together("yes", "cpu")


# --- the shell prefix -------------------------------------------------------------------


def test_the_shell_prefix_sets_path_pythonpath_and_the_slots_per_gpu():
    prefix = job_policy.shell_prefix("/re po", "/venv/bin", resources(jobs_per_gpu=3))
    assert prefix == (
        "export PATH=/venv/bin:$PATH PYTHONPATH='/re po'${{PYTHONPATH:+:$PYTHONPATH}}; "
        "export DDRANK_JOBS_PER_GPU=3; "
        "export DDRANK_CHECKPOINT_MINUTES=10.0; trap '' USR1; "
        "export DDRANK_MASTER_PID=$PPID; exec "
    )
    # as Snakemake formats it: the shell's own braces survive
    assert "PYTHONPATH='/re po'${PYTHONPATH:+:$PYTHONPATH};" in prefix.format()
    assert job_policy.ENV_JOBS_PER_GPU == gpu_lease.ENV_JOBS_PER_GPU


def test_the_prefix_makes_bash_the_job_and_names_the_run_that_started_it():
    """`exec`: no wrapper shell outlives or outlasts the job; $PPID: the job's watch."""
    prefix = job_policy.shell_prefix("/repo", None, resources()).format()
    out = subprocess.run(
        [
            "bash",
            "-c",
            prefix
            + "python -c \"import os; print(os.getppid(), os.environ['DDRANK_MASTER_PID'])\"",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": os.environ["PATH"]},
    ).stdout.split()
    assert out == [str(os.getpid())] * 2  # python replaced bash: its parent is ours


def test_under_conda_the_prefix_leaves_path_alone():
    prefix = job_policy.shell_prefix("/repo", None, resources())
    assert prefix == (
        "export PYTHONPATH=/repo${{PYTHONPATH:+:$PYTHONPATH}}; export DDRANK_JOBS_PER_GPU=1; "
        "export DDRANK_CHECKPOINT_MINUTES=10.0; trap '' USR1; "
        "export DDRANK_MASTER_PID=$PPID; exec "
    )


def test_the_policy_imports_no_torch():
    """The workflow imports it while it builds the DAG (common.smk)."""
    code = (
        "import sys, ddrank_steps.runtime.job_policy; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def shell_commands() -> dict[str, str]:
    """Each `shell:` command of the rules (and TRAIN_SHELL), as the text of its literals."""
    import ast
    import re

    found = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            name = None
            if line.strip() == "shell:":
                name, body = f"{smk.name}:{i + 1}", lines[i + 1 :]
            elif line.startswith("TRAIN_SHELL = ("):
                name, body = "TRAIN_SHELL", lines[i + 1 :]
            if name is None:
                continue
            parts = []
            for text in body:
                if not re.match(r'\s+"', text):
                    break
                parts.append(ast.literal_eval(text.strip()))
            found[name] = "".join(parts) or body[0].strip()
    return found


def test_every_rule_runs_one_command_which_the_prefix_execs():
    """`exec` in the prefix replaces bash with the first command: a second one (`a && b`,
    `a; b`, `a | b`) would never run, so every rule's shell is one command."""
    commands = shell_commands()
    assert len(commands) > 10 and "TRAIN_SHELL" in commands
    for name, command in commands.items():
        if command == "TRAIN_SHELL":
            continue
        assert command.startswith("python -m ddrank_steps."), (name, command)
        assert not any(sep in command for sep in ("&&", "||", ";", "|")), (name, command)
