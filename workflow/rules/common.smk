import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

# The stages are the ddrank_steps package next to workflow/; run that copy, with the
# interpreter that runs Snakemake, so the code the rules declare is the code they run.
REPO = str(Path(workflow.basedir).parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (REPO, os.environ.get("PYTHONPATH")) if p
)
PYTHON = sys.executable

from ddrank_steps.datasets import prepare_settings
from ddrank_steps.image_files import list_images
from ddrank_steps.errors import ConfigError
from ddrank_steps.code_inputs import stage_sources, train_sources
from ddrank_steps.plan import build_plan, canonical_json

validate(config, "../schemas/config.schema.yaml")
try:
    PLAN = build_plan(config)
except ConfigError as exc:
    raise WorkflowError(f"config error: {exc}") from None

DEVICE = config["device"]
RES = config["resources"]


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    method=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    ipc=r"\d+",
    seed=r"\d+",
    kind=r"random|herding|kmeans",
    set=r"rdm-ipc\d+|syn-[A-Za-z0-9][A-Za-z0-9_.+-]*",
    protocol=r"[0-9a-f]{10}",
    teachers=r"[0-9a-f]{10}",
    metric=r"lrs_hard|lrs_soft|ars|accuracy",


def stage_code(stage):
    """The package files the stage runs: a change to any of them reruns its jobs."""
    return stage_sources(stage)


def dataset_settings(wildcards):
    return canonical_json(prepare_settings(config["datasets"][wildcards.dataset]))


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
    inputs = {
        "images": PLAN.syn_images_input(wildcards.method),
        "meta": f"results/datasets/{method['dataset']}/meta.json",
        "code": stage_code("syn_set"),
    }
    if checks_zca(method):
        # the ZCA fit, to check that the set is in ZCA space
        inputs["data"] = f"results/datasets/{method['dataset']}/data.pt"
    if os.path.isdir(inputs["images"]):
        # every image of a folder set, so editing one reruns the import
        inputs["image_files"] = [str(p) for p in list_images(Path(inputs["images"]))]
    if method["labels"]:
        inputs["labels"] = method["labels"]
    if method["soft_labels"]:
        inputs["soft_labels"] = method["soft_labels"]
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
        args += ["--labels", input.labels]
    if method["soft_labels"]:
        args += ["--soft-labels", input.soft_labels]
    if method["lr"] is not None:
        args += [
            "--lr",
            input.lr if isinstance(method["lr"], str) else repr(method["lr"]),
        ]
    return " ".join(args)


# --- training runs --------------------------------------------------------------------


def train_inputs(wildcards):
    inputs = {
        "data": f"results/datasets/{wildcards.dataset}/data.pt",
        "meta": f"results/datasets/{wildcards.dataset}/meta.json",
        "code": train_sources(PLAN.protocols[wildcards.protocol]),
    }
    set_name = getattr(wildcards, "set", "real")
    set_file = PLAN.train_set_input(wildcards.dataset, set_name, int(wildcards.seed))
    if set_file is not None:
        inputs["set"] = set_file
    inputs.update(
        PLAN.train_label_inputs(
            wildcards.dataset, set_name, wildcards.protocol, int(wildcards.seed)
        )
    )
    return inputs


def train_args(wildcards, input):
    """The set and, for soft labels, the teachers (mode M) or stored labels (mode S)."""
    if "set" in input.keys():
        args = [f"--set {shlex.quote(input.set)}"]
    else:
        args = [f"--real --set {shlex.quote(input.data)}"]
    if "soft_labels" in input.keys():
        args.append(f"--soft-labels {shlex.quote(input.soft_labels)}")
    if "teachers" in input.keys():
        args += [f"--teacher {shlex.quote(path)}" for path in input.teachers]
    return " ".join(args)


def run_protocol_json(wildcards):
    if wildcards.protocol not in PLAN.protocols:
        raise WorkflowError(
            f"no protocol in the config has key {wildcards.protocol}; "
            "results/runs/ may hold runs of an earlier config"
        )
    return canonical_json(PLAN.protocols[wildcards.protocol])


def train_gpus(wildcards):
    return RES["train_gpus"]


def real_gpus(wildcards):
    return RES["real_processes"] if RES["train_gpus"] else 0


# Tiny sets train in one process (DDP would buy nothing); a real-hard job with
# resources.real_processes > 1 runs under torchrun, one process per GPU.
SINGLE = "-m ddrank_steps.stages.train"
TORCHRUN = (
    "-m torch.distributed.run --standalone --nnodes 1"
    f" --nproc-per-node {RES['real_processes']} -m ddrank_steps.stages.train"
)
REAL_LAUNCHER = TORCHRUN if RES["real_processes"] > 1 else SINGLE


# One command for every training job; the real-hard runs add --checkpoint so that
# their weights can serve as teachers. gpu_lease gives the job its own GPUs on a
# workstation (Snakemake only counts them) and passes through under SLURM or with none.
TRAIN_CMD = (
    "{PYTHON} -m ddrank_steps.gpu_lease --gpus {resources.gpu} --"
    " {PYTHON} {params.launcher} {params.args}"
    " --data {input.data:q} --meta {input.meta:q}"
    " --protocol {params.protocol:q} --protocol-key {wildcards.protocol}"
    " --seed {wildcards.seed} --device {params.device} --threads {threads}"
    " --workers {resources.data_workers} --out {output.json:q}"
)


# --- soft labels ----------------------------------------------------------------------


def soft_label_inputs(wildcards):
    teachers = PLAN.teacher_sets[wildcards.teachers]
    seed = int(wildcards.seed)
    return {
        "set": PLAN.train_set_input(wildcards.dataset, wildcards.set, seed),
        "meta": f"results/datasets/{wildcards.dataset}/meta.json",
        "teachers": PLAN.teacher_paths(teachers, wildcards.dataset, seed),
        "code": stage_code("soft_labels"),
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
        "code": stage_code("score"),
    }
