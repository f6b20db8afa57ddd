# The input functions, params and resources of the training rules (train.smk): the
# runs' inputs and arguments, how each job uses the machine (runtime/job_policy.py) and
# the one command of every training job; then those of the soft_labels rule.


# --- training runs --------------------------------------------------------------------


def train_inputs(wildcards):
    """The dataset, the set (none for the real split) and what the run's label source
    reads: the teachers' checkpoints or the soft_labels stage's file."""
    seed = int(wildcards.seed)
    inputs = dict(dataset_files(wildcards.dataset))
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


# Per protocol key, not per job: every run of a protocol (sets x seeds) shares it.
@functools.cache
def train_code_of_key(key):
    """The digest of the files a training job of run protocol `key` runs."""
    return digest(train_sources(run_protocol_of_key(key)))


def train_code(wildcards):
    return train_code_of_key(wildcards.protocol)


@functools.cache
def protocol_json(key):
    return canonical_json(run_protocol_of_key(key))


def run_protocol_json(wildcards):
    return protocol_json(wildcards.protocol)


# How a training job uses the machine: ddrank_steps/runtime/job_policy.py. Its GPUs are
# asked when the jobs are made, once Snakemake knows its executor (workflow.local_exec):
# at parse time it does not yet.


def run_processes(wildcards):
    return job_policy.processes_of(run_protocol_of(wildcards))


def set_gpus(wildcards):
    return job_policy.train_gpus(RES, run_processes(wildcards), workflow.local_exec)


def real_gpus(wildcards):
    return job_policy.torchrun_gpus(RES, workflow.local_exec)


def train_gpus(wildcards):
    return job_policy.one_process_gpus(RES, workflow.local_exec)


def set_threads(wildcards):
    return job_policy.threads(RES, run_processes(wildcards))


def train_launcher(wildcards):
    return job_policy.launcher(run_processes(wildcards))


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
    }


def soft_label_code(wildcards):
    return digest(soft_labels_sources(PLAN.teacher_sets[wildcards.teachers]))


def soft_label_args(wildcards, input):
    teachers = shlex.quote(canonical_json(PLAN.teacher_sets[wildcards.teachers]))
    checkpoints = " ".join(f"--teacher {shlex.quote(path)}" for path in input.teachers)
    return f"--teachers {teachers} {checkpoints}"
