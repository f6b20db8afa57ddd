# One job trains a set under one protocol for one seed, over the protocol's whole LR
# grid (a fixed LR is a grid of one); the LR-tuning stage is this job's selection.
rule train:
    input:
        unpack(train_inputs),
    output:
        json="results/runs/{dataset}/{set}/{protocol}/seed{seed}.json",
    log:
        "results/logs/train/{dataset}/{set}/{protocol}/seed{seed}.log",
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=train_gpus,
        data_workers=data_workers,
    params:
        protocol=run_protocol_json,
        args=train_args,
        device=DEVICE,
        launcher=SINGLE,
    shell:
        TRAIN_CMD + " > {log:q} 2>&1"


# real-hard: the model on the whole real train split. Its checkpoint is the teacher of
# soft-label protocols that find none under teacher_dir (one per seed, trained once).
rule train_real:
    input:
        unpack(train_inputs),
    output:
        json="results/runs/{dataset}/real/{protocol}/seed{seed}.json",
        checkpoint="results/runs/{dataset}/real/{protocol}/seed{seed}.pt",
    log:
        "results/logs/train/{dataset}/real/{protocol}/seed{seed}.log",
    threads: RES["train_threads"] * RES["real_processes"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=real_gpus,
        data_workers=data_workers,
    params:
        protocol=run_protocol_json,
        args=train_args,
        device=DEVICE,
        launcher=REAL_LAUNCHER,
    shell:
        TRAIN_CMD + " --checkpoint {output.checkpoint:q} > {log:q} 2>&1"


# Mode-S soft labels of a set: the teacher ensemble's logits on its un-augmented images.
rule soft_labels:
    input:
        unpack(soft_label_inputs),
    output:
        "results/soft_labels/{dataset}/{set}/{teachers}/seed{seed}.pt",
    log:
        "results/logs/soft_labels/{dataset}/{set}/{teachers}/seed{seed}.log",
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=30,
        gpu=train_gpus,
    params:
        args=soft_label_args,
        device=DEVICE,
    shell:
        "{PYTHON} -m ddrank_steps.gpu_lease --gpus {resources.gpu} --"
        " {PYTHON} -m ddrank_steps.stages.soft_labels --set {input.set:q} --meta {input.meta:q}"
        " {params.args} --device {params.device} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"
