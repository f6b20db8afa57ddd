import functools
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# The stages are the ddrank_steps package next to workflow/; jobs run that copy, so the
# code the rules declare as inputs is the code they run.
REPO = str(Path(workflow.basedir).parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from ddrank_steps import metric_registry, paths
from ddrank_steps.runtime import run_lock
from ddrank_steps.planning.code_inputs import (
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
from ddrank_steps.runtime.atomic_write import unwritable_reason
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.keys import canonical_json
from ddrank_steps.planning.reference_tables import REFERENCE_SET_KINDS
from ddrank_steps.planning.stored_plan import cached_plan
from ddrank_steps.reporting.score_records import group_of

# Nothing imported here imports torch: a run whose config and inputs did not change loads
# the stored plan (stored_plan.py) and builds the DAG in plain Python. Keep it that way.

# One interpreter for every job: the one running Snakemake (the venv or conda env that
# ddrank was installed into), found first on PATH, so `python` in a rule is that one.
# Each rule's `conda:` names the same packages for `--sdm conda`, which then provides
# the interpreter itself.
_USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_PATH = (
    "" if _USE_CONDA else f"PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH "
)
_SHELL_PREFIX = (
    f"export {_PATH}PYTHONPATH={shlex.quote(REPO)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)
shell.prefix(_SHELL_PREFIX)

# A lock here means another run is active, or one was killed: say which, before
# Snakemake's own message (the same in both cases) asks for --unlock.
if workflow.is_main_process and (_lock := run_lock.lock_report()):
    logger.warning(_lock)

RESULTS = Path(paths.LEADERBOARD).parent


def check_results_writable():
    """Every job writes under results/: a read-only one is one clear error before any job
    starts, not a failure in each (called by onstart, so a dry-run is not stopped)."""
    if why := unwritable_reason(RESULTS):
        raise WorkflowError(
            f"{RESULTS}/ is not writable ({why}); every result is written there. Make it "
            f"writable (chmod -R u+w {RESULTS}, or chattr -R -i {RESULTS} if it was made "
            "immutable), or run from a working directory you can write (--directory)."
        )


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

DEVICE = config["device"]
RES = config["resources"]


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


def stage_code(stage):
    """The package files the stage runs: a change to any of them reruns its jobs."""
    return stage_sources(stage)


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


# --- syn sets -------------------------------------------------------------------------


def checks_zca(method):
    """Whether syn_set checks the set's ZCA statistics: sets given by the user for a
    dataset with zca. Reference sets are built from its whitened train split already, and
    the heuristic can misfire on them (k-means centroids are smoother than single images).
    """
    zca = config["datasets"][method["dataset"]].get("zca")
    return bool(zca) and not method["images"].startswith("reference:")


def syn_set_inputs(wildcards):
    method = PLAN.method(wildcards.method)
    dataset = dataset_files(method["dataset"])
    inputs = {
        "images": PLAN.syn_images_input(wildcards.method),
        "meta": dataset["meta"],
        "code": stage_code("syn_set"),
    }
    if checks_zca(method):
        # the ZCA fit, to check that the set is in ZCA space
        inputs["data"] = dataset["data"]
    if Path(inputs["images"]).is_dir():
        # image_files imports torch: only for a folder set, and only for its own job
        from ddrank_steps.data.image_files import list_images

        # every image of a folder set, so editing one reruns the import
        inputs["image_files"] = [str(p) for p in list_images(Path(inputs["images"]))]
    for key in ("labels", "soft_labels"):
        if method[key]:
            inputs[key] = method[key]
    if isinstance(method["lr"], str):
        inputs["lr"] = method["lr"]
    return inputs


def syn_set_args(wildcards, input):
    method = PLAN.method(wildcards.method)
    args = ["--ipc", str(method["ipc"])]
    if checks_zca(method):
        args += ["--data", shlex.quote(input.data)]
    elif config["datasets"][method["dataset"]].get("zca"):
        args.append("--reference-set")  # only with zca: other params must not change
    if method["labels"]:
        args += ["--labels", shlex.quote(input.labels)]
    if method["soft_labels"]:
        args += ["--soft-labels", shlex.quote(input.soft_labels)]
    if method["lr"] is not None:
        lr = input.lr if isinstance(method["lr"], str) else repr(method["lr"])
        args += ["--lr", shlex.quote(lr)]
    return " ".join(args)


# --- training runs --------------------------------------------------------------------


def train_inputs(wildcards):
    """The dataset, the set (none for the real split) and what the run's label source
    reads: the teachers' checkpoints or the soft_labels stage's file."""
    seed = int(wildcards.seed)
    inputs = {
        **dataset_files(wildcards.dataset),
        "code": list(train_code(wildcards.protocol)),
    }
    set_name = getattr(wildcards, "set", "real")
    set_file = PLAN.set_file(wildcards.dataset, set_name, seed)
    if set_file is not None:
        inputs["set"] = set_file
    inputs.update(
        PLAN.label_inputs(wildcards.dataset, set_name, wildcards.protocol, seed)
    )
    return inputs


def train_args(wildcards, input):
    """The set, and the label inputs its run protocol's label_source asks for."""
    source = run_protocol_of(wildcards)["label_source"]
    if "set" in input.keys():
        args = [f"--set {shlex.quote(input.set)}"]
    else:
        args = [f"--real --set {shlex.quote(input.data)}"]
    if source == "teacher_logits":
        args.append(f"--soft-labels {shlex.quote(input.soft_labels)}")
    elif source == "teachers":
        args += [f"--teacher {shlex.quote(path)}" for path in input.teachers]
    return " ".join(args)


def run_protocol_of(wildcards):
    return run_protocol_of_key(wildcards.protocol)


def run_protocol_of_key(key):
    try:
        return PLAN.run_protocol_of(key)
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None


# Per protocol key, not per job: every run of a protocol (sets x seeds) shares them.
@functools.cache
def train_code(key):
    """The files a training job of run protocol `key` runs (code_inputs.train_sources)."""
    return tuple(train_sources(run_protocol_of_key(key)))


@functools.cache
def protocol_json(key):
    return canonical_json(run_protocol_of_key(key))


def run_protocol_json(wildcards):
    return protocol_json(wildcards.protocol)


# Snakemake's `gpu` resource counts slots of 1/jobs_per_gpu GPU, so that
# `--resources gpu=<GPUs x jobs_per_gpu>` lets that many one-GPU jobs share each device;
# gpu_lease reads a job's count the same way (below a whole GPU: a share of one device),
# told the slot count by DDRANK_JOBS_PER_GPU. That goes through the environment, not the
# command line: a rule's command text and params are rerun triggers, and how jobs share a
# GPU must never rerun one.
shell.prefix(_SHELL_PREFIX + f"export DDRANK_JOBS_PER_GPU={RES['jobs_per_gpu']}; ")


def jobs_per_gpu():
    """Slots per GPU. 1 under SLURM (and in its job steps): SLURM gives each job its own
    devices and counts whole GPUs, so jobs_per_gpu never multiplies a SLURM request (the
    lease passes through there). Asked when the jobs are made, once Snakemake knows its
    executor: at parse time it does not yet."""
    return RES["jobs_per_gpu"] if workflow.local_exec else 1


def concurrent_lrs(wildcards):
    """Whether a job's LRs train together (the train stage's --concurrent-lrs). A
    resource, not a param: the results are the same either way, so it must rerun nothing.
    """
    setting = RES["concurrent_lrs"]
    return setting if setting == "auto" else ("on" if setting else "off")


def train_gpus(wildcards):
    """One slot for a one-GPU job (a tiny set shares its device); whole GPUs above."""
    gpus = RES["train_gpus"]
    return gpus if gpus <= 1 else gpus * jobs_per_gpu()


def run_processes(wildcards):
    """Processes of one training job: the `processes` its run protocol is keyed for (a
    real-hard run, or a set of at least resources.ddp_min_images), else one."""
    return run_protocol_of(wildcards).get("processes", 1)


def real_gpus(wildcards):
    """A real-hard job trains on the whole real train split: whole GPUs, one a process."""
    return RES["real_processes"] * jobs_per_gpu() if RES["train_gpus"] else 0


def set_gpus(wildcards):
    """A set under torchrun takes one GPU per process, as a real-hard job does."""
    return (
        real_gpus(wildcards) if run_processes(wildcards) > 1 else train_gpus(wildcards)
    )


def set_threads(wildcards):
    return RES["train_threads"] * run_processes(wildcards)


def launcher(processes):
    """How `python` starts the train stage: directly, or under torchrun with one process
    per GPU (or per CPU share) when the run is keyed for more than one."""
    stage = "-m ddrank_steps.stages.train"
    if processes == 1:
        return stage
    return (
        "-m torch.distributed.run --standalone --nnodes 1"
        f" --nproc-per-node {processes} {stage}"
    )


def train_launcher(wildcards):
    return launcher(run_processes(wildcards))


# Sets train in one process (DDP would buy nothing on a few hundred images), except
# sets of at least resources.ddp_min_images, which the planner keys for
# resources.real_processes; a real-hard job with resources.real_processes > 1 always
# runs under torchrun, one process per GPU.
REAL_LAUNCHER = launcher(RES["real_processes"])


def save_checkpoint(wildcards, output):
    """real-hard runs keep their selected weights, so that they can serve as teachers."""
    return f"--checkpoint {shlex.quote(output.checkpoint)}"


# One command for every training job (train and train_real). gpu_lease gives the job its
# own GPUs, or its own slot of one, on a workstation (Snakemake only counts them) and
# passes through under SLURM or with none.
TRAIN_SHELL = (
    "python -m ddrank_steps.runtime.gpu_lease --gpus {resources.gpu} --"
    " python {params.launcher} {params.args}"
    " --data {input.data:q} --meta {input.meta:q}"
    " --protocol {params.protocol:q} --protocol-key {wildcards.protocol}"
    " --seed {wildcards.seed} --device {params.device} --threads {threads}"
    " --workers {resources.data_workers} --concurrent-lrs {resources.concurrent_lrs}"
    " --out {output.json:q} {params.save}"
    " > {log:q} 2>&1"
)


# --- soft labels ----------------------------------------------------------------------


def soft_label_inputs(wildcards):
    teachers = PLAN.teacher_sets[wildcards.teachers]
    seed = int(wildcards.seed)
    return {
        "set": PLAN.set_file(wildcards.dataset, wildcards.set, seed),
        "meta": dataset_files(wildcards.dataset)["meta"],
        "teachers": PLAN.teacher_paths(teachers, wildcards.dataset, seed),
        "code": soft_labels_sources(teachers),
    }


def soft_label_args(wildcards, input):
    teachers = shlex.quote(canonical_json(PLAN.teacher_sets[wildcards.teachers]))
    checkpoints = " ".join(f"--teacher {shlex.quote(path)}" for path in input.teachers)
    return f"--teachers {teachers} {checkpoints}"


# --- scores ---------------------------------------------------------------------------


def score_spec(wildcards):
    return canonical_json(PLAN.scores[(wildcards.method, wildcards.metric)])


def score_inputs(wildcards):
    return {
        "runs": PLAN.score_inputs(wildcards.method, wildcards.metric),
        "code": score_sources(wildcards.metric),
    }


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
        "code": stage_code("plot_gallery"),
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
    curves and the methods' galleries."""
    figures = [svg(group.figure) for group in GROUPS]
    for (method, metric), spec in PLAN.scores.items():
        figures.append(svg(paths.TERMS_FIGURE.format(method=method, metric=metric)))
        figures += [
            svg(paths.run_figure_of(run)) for run in PLAN.score_inputs(method, metric)
        ]
    for name in sorted({method for method, _ in PLAN.scores}):
        dataset = PLAN.method(name)["dataset"]
        figures.append(svg(paths.GALLERY_FIGURE.format(dataset=dataset, method=name)))
    return sorted(set(figures))
