"""How a training job uses the machine, decided once: its GPUs (whole devices or slots of
one), how `python` starts it (directly or under torchrun), its threads, whether its LRs
train together, and the shell prefix every job runs under.

The workflow asks these while it builds the DAG, and the engine asks the concurrent-LR
question when a job runs; both call the functions here, so each rule is written once.
Plain Python on the `resources` section of the config (validated, defaults filled in):
no torch, no Snakemake. None of it is a rerun trigger: a job's GPUs, threads, launcher
and concurrent LRs change how fast it runs, never its result, so they are resources or
environment, never params or command text that would key a job.

GPU slots: Snakemake's `gpu` resource counts slots of 1/jobs_per_gpu GPU, so that
`--resources gpu=<GPUs x jobs_per_gpu>` lets that many one-GPU jobs share each device.
`gpu_lease` reads a job's count the same way (below a whole GPU: a share of one device),
told the slot count by DDRANK_JOBS_PER_GPU in the shell prefix (`shell_prefix`), not on
the command line. Under SLURM (not `local`) every job gets its own devices and SLURM
counts whole GPUs, so jobs_per_gpu counts as 1 there and never multiplies a request.
"""

from __future__ import annotations

import shlex

# Read by gpu_lease: the slots per GPU, exported in every job's shell prefix.
ENV_JOBS_PER_GPU = "DDRANK_JOBS_PER_GPU"
# resources.checkpoint_minutes, to the train stage: how often a job saves to resume from
ENV_CHECKPOINT_MINUTES = "DDRANK_CHECKPOINT_MINUTES"
DEFAULT_CHECKPOINT_MINUTES = 10.0

# The pid of the run that started a job (read by runtime/orphans.py; no import of it here:
# the workflow reads this module while it builds the DAG).
ENV_MASTER_PID = "DDRANK_MASTER_PID"

# The train stage's --concurrent-lrs values.
CONCURRENT_LRS = ("auto", "on", "off")

TRAIN_STAGE = "-m ddrank_steps.stages.train"


# --- GPUs -------------------------------------------------------------------------------


def slots_per_gpu(resources: dict, local: bool) -> int:
    """Slots per GPU: resources.jobs_per_gpu on a workstation, 1 under SLURM (and in its
    job steps), where SLURM gives each job its own devices and counts whole GPUs.
    `local` is Snakemake's `workflow.local_exec`, known once the jobs are made (at parse
    time Snakemake does not know its executor yet)."""
    return resources["jobs_per_gpu"] if local else 1


def one_process_gpus(resources: dict, local: bool) -> int:
    """The `gpu` of a one-process job (a set's training run, a soft_labels job): one slot
    for a one-GPU job (a tiny set shares its device), whole GPUs above."""
    gpus = resources["train_gpus"]
    return gpus if gpus <= 1 else gpus * slots_per_gpu(resources, local)


def torchrun_gpus(resources: dict, local: bool) -> int:
    """The `gpu` of a job under torchrun (real-hard, or a set of at least ddp_min_images
    images): whole GPUs, one per process (resources.real_processes); none on the CPU."""
    if not resources["train_gpus"]:
        return 0
    return resources["real_processes"] * slots_per_gpu(resources, local)


def train_gpus(resources: dict, processes: int, local: bool) -> int:
    """The `gpu` of a training job of `processes` processes: under torchrun one GPU per
    process, as a real-hard job; in one process, that of a one-process job."""
    if processes > 1:
        return torchrun_gpus(resources, local)
    return one_process_gpus(resources, local)


# --- processes, launcher, threads -------------------------------------------------------


def processes_of(run_protocol: dict) -> int:
    """Processes of one training job: the `processes` its run protocol is keyed for (a
    real-hard run, or a set of at least resources.ddp_min_images), else one."""
    return run_protocol.get("processes", 1)


def launcher(processes: int) -> str:
    """How `python` starts the train stage: directly, or under torchrun with one process
    per GPU (or per CPU share) when the run is keyed for more than one. Sets train in one
    process (DDP would buy nothing on a few hundred images) unless the planner keyed them
    for resources.real_processes; a real-hard job with real_processes > 1 always runs
    under torchrun."""
    if processes == 1:
        return TRAIN_STAGE
    return (
        "-m torch.distributed.run --standalone --nnodes 1"
        f" --nproc-per-node {processes} {TRAIN_STAGE}"
    )


def threads(resources: dict, processes: int) -> int:
    """CPU threads of a training job: resources.train_threads for each of its processes."""
    return resources["train_threads"] * processes


# --- concurrent LRs ---------------------------------------------------------------------


def concurrent_lrs_setting(resources: dict) -> str:
    """The train stage's --concurrent-lrs from resources.concurrent_lrs (auto|true|false):
    auto, on or off. The stage decides `auto` with `lrs_train_together` once it knows its
    device."""
    setting = resources["concurrent_lrs"]
    return setting if setting == "auto" else ("on" if setting else "off")


def lrs_train_together(
    setting: str,
    device_type: str,
    processes: int = 1,
    streamed: bool = False,
    lrs: int | None = None,
) -> bool:
    """Whether a job's LRs train together (the engine's `train_together`), from the
    --concurrent-lrs `setting` (auto, on, off), the device type ("cuda", "cpu", ...), the
    job's processes, whether its set is streamed and, once known, how many LRs it has.

    `auto`: on a GPU in one process with the set in memory: there a tiny model leaves the
    device mostly idle, while on the CPU the loop is compute-bound and one run at a time
    is as fast; a streamed (large) set fills the device alone and K copies of its
    activations may not fit. Under DDP (processes > 1), or with one LR, the runs always
    train one at a time.
    """
    if setting not in CONCURRENT_LRS:
        raise ValueError(
            f"concurrent_lrs is {setting!r}; valid values: {', '.join(CONCURRENT_LRS)}"
        )
    if processes > 1 or (lrs is not None and lrs < 2):
        return False
    if setting == "auto":
        return device_type == "cuda" and not streamed
    return setting == "on"


# --- the shell prefix -------------------------------------------------------------------


def shell_prefix(repo: str, python_dir: str | None, resources: dict) -> str:
    """What every job's shell command starts with (Snakemake's `shell.prefix`, which
    formats it, hence the doubled braces): `python` is the interpreter in `python_dir`
    (the one running Snakemake; None under `--sdm conda`, which provides its own), the
    package is the checkout at `repo` (jobs run the code they declare as inputs), and the
    slots per GPU go to gpu_lease through the environment (`ENV_JOBS_PER_GPU`), as the
    checkpoint interval goes to the train stage (`ENV_CHECKPOINT_MINUTES`): a rule's
    command text and params are rerun triggers, and how jobs share a GPU or how often
    they checkpoint must never rerun one.

    It ends with `exec`, so bash becomes the job instead of waiting on it (a killed
    wrapper is a killed job), and exports the pid of the run that started the job, which
    the job watches (`runtime/orphans.py`): no job outlives its run. Every rule's command
    is therefore one command (with redirections), never a list."""
    path = "" if python_dir is None else f"PATH={shlex.quote(python_dir)}:$PATH "
    pythonpath = f"PYTHONPATH={shlex.quote(repo)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"
    minutes = resources.get("checkpoint_minutes", DEFAULT_CHECKPOINT_MINUTES)
    return (
        f"export {path}{pythonpath}; export {ENV_JOBS_PER_GPU}={resources['jobs_per_gpu']}; "
        f"export {ENV_CHECKPOINT_MINUTES}={minutes}; {IGNORE_WARNING_SIGNAL}"
        f"export {ENV_MASTER_PID}=$PPID; exec "
    )


# SLURM's warning signal (`--signal=USR1@...` in the SLURM profile) goes to every process
# of the job step. The train stage catches it, checkpoints and exits; the job's shell and
# torchrun's agent, which do not catch it, would die of it at once, and the step's end
# would kill the stage before its checkpoint is written. Ignored by them, it is inherited
# as ignored, and only a process that installs a handler (the stage) acts on it.
IGNORE_WARNING_SIGNAL = "trap '' USR1; "
