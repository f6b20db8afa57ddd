# One job trains a set under one protocol for one seed, over the protocol's whole LR
# grid (a fixed LR is a grid of one); the LR-tuning stage is this job's selection.
rule train:
    input:
        unpack(train_inputs),
    output:
        json=paths.RUN,
    log:
        "results/logs/train/{dataset}/{set}/{protocol}/seed{seed}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    threads: set_threads
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=set_gpus,
        data_workers=data_workers,
        concurrent_lrs=job_policy.concurrent_lrs_setting(RES),
    params:
        protocol=run_protocol_json,
        args=train_args,
        device=DEVICE,
        launcher=train_launcher,
        save="",
        code=train_code,
        cache_key=cache_key,
    shell:
        TRAIN_SHELL


# real-hard: the model on the whole real train split. Its checkpoint is the teacher of
# soft-label protocols that find none under teacher_dir (one per seed, trained once).
rule train_real:
    input:
        unpack(train_inputs),
    output:
        json=paths.REAL_RUN,
        checkpoint=paths.REAL_CHECKPOINT,
    log:
        "results/logs/train/{dataset}/real/{protocol}/seed{seed}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    threads: job_policy.threads(RES, RES["real_processes"])
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=real_gpus,
        data_workers=data_workers,
        concurrent_lrs=job_policy.concurrent_lrs_setting(RES),
    params:
        protocol=run_protocol_json,
        args=train_args,
        device=DEVICE,
        launcher=job_policy.launcher(RES["real_processes"]),
        save=save_checkpoint,
        code=train_code,
        cache_key=cache_key,
    shell:
        TRAIN_SHELL


# real-hard given, not trained (`eval_full_data: false`): a known accuracy as a run file.
rule given_accuracy:
    output:
        paths.GIVEN_RUN,
    log:
        "results/logs/given_accuracy/{dataset}/{protocol}/seed{seed}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        protocol=run_protocol_json,
        code=stage_code("given_accuracy"),
    shell:
        "python -m ddrank_steps.stages.given_accuracy --protocol {params.protocol:q}"
        " --protocol-key {wildcards.protocol} --seed {wildcards.seed} --out {output:q}"
        " > {log:q} 2>&1"


# Mode-S soft labels of a set: the teacher ensemble's logits on its un-augmented images.
rule soft_labels:
    input:
        unpack(soft_label_inputs),
    output:
        paths.SOFT_LABELS,
    log:
        "results/logs/soft_labels/{dataset}/{set}/{teachers}/seed{seed}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=30,
        gpu=train_gpus,
    params:
        args=soft_label_args,
        device=DEVICE,
        code=soft_label_code,
        cache_key=cache_key,
    shell:
        "python -m ddrank_steps.runtime.gpu_lease --gpus {resources.gpu} --"
        " python -m ddrank_steps.stages.soft_labels --set {input.set:q} --meta {input.meta:q}"
        " {params.args} --device {params.device} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"
