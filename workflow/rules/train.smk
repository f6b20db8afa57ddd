# One job trains a set under one protocol for one seed, over the protocol's whole LR
# grid (a fixed LR is a grid of one); the LR-tuning stage is this job's selection.
rule train:
    input:
        unpack(train_inputs),
    output:
        "results/runs/{dataset}/{set}/{protocol}/seed{seed}.json",
    log:
        "results/logs/train/{dataset}/{set}/{protocol}/seed{seed}.log",
    threads: RES["train_threads"]
    resources:
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
        gpu=train_gpus,
    params:
        protocol=run_protocol_json,
        set_args=train_set_args,
        device=DEVICE,
    shell:
        "{PYTHON} -m ddrank_steps.gpu_lease --gpus {resources.gpu} -- {PYTHON} -m ddrank_steps.train {params.set_args}"
        " --data {input.data:q} --meta {input.meta:q}"
        " --protocol {params.protocol:q} --protocol-key {wildcards.protocol}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"
