import functools
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# SLURM's warning before a time limit (`--signal=USR1@<lead>`, workflow/profiles/slurm)
# goes to every process of the job's steps. Under the SLURM executor those include the
# job step's own Snakemake (the plugin runs `srun ... python -m snakemake` inside each
# SLURM job), which, like any Python process, dies of SIGUSR1 by default: the step then
# ended at once ("task 0: User defined signal 1"), taking the training process with it
# before it could checkpoint and exit 75. So every Snakemake process inside a SLURM job
# ignores it, as soon as it reads the workflow (a second or two after it starts); its
# jobs inherit that, and only the train stage, which installs its own handler
# (runtime/preemption.py), acts on it. Outside a SLURM job nothing changes. Only the
# main thread may set a handler (a run through the API may load the workflow elsewhere).
if (
    os.environ.get("SLURM_JOB_ID")
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

# The stages are the ddrank_steps package next to workflow/; jobs run that copy, so the
# code whose digest each job carries as its `code` param is the code it runs.
REPO = str(Path(workflow.basedir).parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from ddrank_steps import metric_registry, paths
from ddrank_steps.runtime import job_policy, rerun_command, run_lock, shared_cache
from ddrank_steps.planning.code_inputs import (
    digest,
    leaderboard_sources,
    plot_sources,
    report_sources,
    score_sources,
    soft_labels_sources,
    stage_sources,
    train_sources,
)
from ddrank_steps.planning.schema import schema_problem
from ddrank_steps.errors import ConfigError
from ddrank_steps.runtime.atomic_write import unwritable_folder
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.keys import canonical_json
from ddrank_steps.planning.reference_tables import REFERENCE_SET_KINDS
from ddrank_steps.planning.stored_plan import cached_plan
from ddrank_steps.reporting.score_records import group_of

# Nothing imported here imports torch: a run whose config and inputs did not change loads
# the stored plan (stored_plan.py) and builds the DAG in plain Python. Keep it that way.

# A lock here means another run is active, or one was killed: say which, before
# Snakemake's own message (the same in both cases) asks for --unlock.
if workflow.is_main_process and (_lock := run_lock.lock_report()):
    logger.warning(_lock)
# `snakemake --unlock` while the run holding the lock, or a job it started, still works
# would let a rerun train those jobs a second time: refuse.
if workflow.is_main_process and "--unlock" in sys.argv:
    if _refusal := run_lock.unlock_refusal():
        raise WorkflowError(_refusal)


def check_no_live_jobs():
    """Jobs of an earlier run still working here (an orphan, or a run started with
    --nolock) would be trained twice: one clear refusal before any job (onstart)."""
    if refusal := run_lock.live_jobs_refusal():
        raise WorkflowError(refusal)


RESULTS = Path(paths.LEADERBOARD).parent


def check_results_writable():
    """Every job writes under results/: a read-only one is one clear error before any job
    starts, not a failure in each (called by onstart, so a dry-run is not stopped)."""
    if found := unwritable_folder(RESULTS):
        folder, why = found
        raise WorkflowError(
            f"{folder}/ is not writable ({why}); every result is written under {RESULTS}/. "
            f"Make it writable (chmod -R u+w {RESULTS}, or chattr -R -i {RESULTS} if it was "
            "made immutable), or run from a working directory you can write (--directory)."
        )


# Snakemake's between-workflow cache (README "Sharing results in a lab"): the rules whose
# jobs are the same computation in every project are eligible, but only when the run
# passes --cache (else Snakemake warns once per eligible rule, on every run). Software is
# left out of the key as ddrank's own run keys leave it out: the same packages installed
# by conda or pip must share. Snakemake's key: the rule's shell command, its params (code
# digest, protocol, settings, cache_key), the content of each input no job makes, and
# the keys of the jobs that make the others.
SHARED_CACHE = "omit-software" if workflow.enable_cache else False


def cache_key(wildcards):
    """The job's wildcards, as a param of each cached rule: Snakemake's cache key covers
    params, not wildcards, so two seeds (or IPCs) of one protocol would share one entry.
    """
    return canonical_json({name: getattr(wildcards, name) for name in wildcards.keys()})


def check_shared_cache():
    """With --cache, a cache folder that cannot take entries is one clear error before any
    job (called by onstart), not a failure after the first job has trained."""
    location = shared_cache.configured_location()
    if workflow.enable_cache and (why := shared_cache.cache_problem(location)):
        raise WorkflowError(why)


SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
# one line first (file, key path, problem, closest key), then the detail; Snakemake's
# validate would print the whole schema with the key path last
_schema_problem = schema_problem(config, SCHEMA, [str(f) for f in workflow.configfiles])
if _schema_problem:
    raise WorkflowError(_schema_problem)
validate(config, "../schemas/config.schema.yaml")  # fills in the defaults
try:
    # the stored plan when the config, the code and every file the plan reads are as
    # they were; else built (and checked) again
    PLAN = cached_plan(config, build_plan, write=workflow.is_main_process)
except ConfigError as exc:
    raise WorkflowError(f"config error: {exc}") from None
if workflow.is_main_process:
    # where each teacher comes from: a mistyped teacher_dir must not pass for a real teacher
    for _teacher in getattr(PLAN, "teacher_notes", {}).values():
        logger.info(f"plan: {_teacher}")

DEVICE = config["device"]
RES = config["resources"]

# One interpreter for every job: the one running Snakemake (the venv or conda env that
# ddrank was installed into), found first on PATH, so `python` in a rule is that one.
# Each rule's `conda:` names the same packages for `--sdm conda`, which then provides
# the interpreter itself. The prefix also tells gpu_lease the slots per GPU.
_USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_PYTHON_DIR = None if _USE_CONDA else str(Path(sys.executable).parent)
# The arguments that select this run (config files, --config, working directory), for the
# "Fix:" lines of the jobs' messages: pasted, they redo a result with the user's config.
RERUN_ARGS = rerun_command.rerun_args(
    launch_dir=os.environ.get("PWD"),  # the shell's: Snakemake has moved to --directory
    run_dir=Path.cwd(),
    snakefile=workflow.main_snakefile,
    configfiles=workflow.config_settings.configfiles,
    config_args=workflow.config_settings.config_args,
    cores=workflow.resource_settings.cores,
)
# The policy's prefix ends with `exec` (the job replaces its shell), so it comes last.
shell.prefix(
    rerun_command.shell_export(RERUN_ARGS)
    + job_policy.shell_prefix(REPO, _PYTHON_DIR, RES)
)


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    method=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    ipc=r"\d+",
    seed=r"\d+",
    kind="|".join(REFERENCE_SET_KINDS),
    set=r"rdm-ipc\d+|syn-[A-Za-z0-9][A-Za-z0-9_.+-]*",
    protocol=r"[0-9a-f]{10}",
    teachers=r"[0-9a-f]{10}",
    metric=metric_registry.wildcard_pattern(),
    protocol_name=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",


# Each job's `code` param: the digest of the content of the package files it runs
# (planning/code_inputs.py). A param, not the files as inputs, so that only a change of
# content reruns a job (not a moved project, a fresh clone or a touched file), and
# `snakemake -n` / `--list-changes params` still say which jobs and why.
def stage_code(stage):
    """The digest of the package files the stage runs."""
    return digest(stage_sources(stage))


def dataset_files(dataset):
    """The prepared dataset's cache and metadata, as the prepare_dataset rule writes them."""
    return {
        "data": paths.DATASET.format(dataset=dataset),
        "meta": paths.DATASET_META.format(dataset=dataset),
    }


def dataset_settings(wildcards):
    return canonical_json(PLAN.dataset_settings[wildcards.dataset])


def data_workers(wildcards):
    """DataLoader processes that decode a dataset's image files. A resource, not a
    param: it changes how fast a job runs, never its result, so it must not rerun jobs.
    """
    return config["datasets"][wildcards.dataset]["num_workers"]


# The syn_set rule's input functions are in data_inputs.smk, the training and soft_labels
# rules' in train_inputs.smk (with how each training job uses the machine).

# --- scores ---------------------------------------------------------------------------


def score_spec(wildcards):
    return canonical_json(PLAN.scores[(wildcards.method, wildcards.metric)])


def score_inputs(wildcards):
    return {"runs": PLAN.score_inputs(wildcards.method, wildcards.metric)}


def score_code(wildcards):
    return digest(score_sources(wildcards.metric))


def plot_code(stage):
    """The code param of a figure of one metric (plot_group, plot_terms)."""
    return lambda wildcards: digest(plot_sources(stage, wildcards.metric))


# --- figures and the report -----------------------------------------------------------

# A leaderboard group (dataset, IPC, metric, protocol name) -> its methods' score files.
GROUPS = {}
for _key, _spec in PLAN.scores.items():
    GROUPS.setdefault(group_of(_spec), []).append(
        paths.SCORE.format(method=_key[0], metric=_key[1])
    )


# The same groups by their figure's wildcards, so each plot_group job finds its own at once.
GROUP_BY_WILDCARDS = {
    (g.dataset, str(g.ipc), g.metric, g.protocol): sorted(files)
    for g, files in GROUPS.items()
}


def group_scores(wildcards):
    """The score files of one group: its figure is redrawn when one of them changes."""
    wanted = (
        wildcards.dataset,
        wildcards.ipc,
        wildcards.metric,
        wildcards.protocol_name,
    )
    if wanted not in GROUP_BY_WILDCARDS:
        raise WorkflowError(f"no leaderboard group {wildcards}: not in the config")
    return list(GROUP_BY_WILDCARDS[wanted])


def run_file_of(wildcards):
    """The run a curve figure draws (RUN and REAL_RUN are the same pattern)."""
    return paths.RUN.format(**wildcards)


def gallery_inputs(wildcards):
    """The method's syn set, the first round's random subset of its IPC, the dataset's
    metadata, and its data (the ZCA fit) when the dataset is whitened."""
    method = PLAN.method(wildcards.method)
    dataset = dataset_files(wildcards.dataset)
    inputs = {
        "syn": paths.SYN_SET.format(**wildcards),
        "rdm": paths.RDM_SET.format(
            dataset=wildcards.dataset, ipc=method["ipc"], seed=config["seed"]
        ),
        "meta": dataset["meta"],
    }
    if config["datasets"][wildcards.dataset].get("zca"):
        inputs["data"] = dataset["data"]
    return inputs


def gallery_args(wildcards, input):
    args = [f"--rdm-seed {config['seed']}"]
    if "data" in input.keys():
        args.append(f"--data {shlex.quote(input.data)}")
    return " ".join(args)


def svg(stem):
    return paths.figure_files(stem)["svg"]


def report_figures():
    """Every figure the report shows, as SVG: the groups', the scores' terms, the runs'
    curves (a known accuracy has none) and the methods' galleries."""
    figures = [svg(group.figure) for group in GROUPS]
    for (method, metric), spec in PLAN.scores.items():
        figures.append(svg(paths.TERMS_FIGURE.format(method=method, metric=metric)))
        figures += [
            svg(paths.run_figure_of(run))
            for run in PLAN.score_inputs(method, metric)
            if not paths.is_given_run(run)
        ]
    for name in sorted({method for method, _ in PLAN.scores}):
        dataset = PLAN.method(name)["dataset"]
        figures.append(svg(paths.GALLERY_FIGURE.format(dataset=dataset, method=name)))
    return sorted(set(figures))
