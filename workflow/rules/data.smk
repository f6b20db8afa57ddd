rule prepare_dataset:
    input:
        code=stage_code("prepare_dataset"),
    output:
        data="results/datasets/{dataset}/data.pt",
        meta="results/datasets/{dataset}/meta.json",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    resources:
        mem_mb=4000,
        runtime=60,
        data_workers=data_workers,
    params:
        settings=dataset_settings,
    shell:
        "{PYTHON} -m ddrank_steps.stages.prepare_dataset --name {wildcards.dataset:q}"
        " --settings {params.settings:q} --data {output.data:q} --meta {output.meta:q}"
        " --workers {resources.data_workers} > {log:q} 2>&1"


rule random_subset:
    input:
        data="results/datasets/{dataset}/data.pt",
        meta="results/datasets/{dataset}/meta.json",
        code=stage_code("random_subset"),
    output:
        set="results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}.pt",
        manifest="results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}.json",
        # the same images as lossless PNGs of the raw pixels, for image-folder tools
        png=directory("results/sets/{dataset}/rdm/ipc{ipc}/seed{seed}_png"),
    log:
        "results/logs/random_subset/{dataset}/ipc{ipc}/seed{seed}.log",
    resources:
        mem_mb=2000,
        runtime=10,
        data_workers=data_workers,
    shell:
        "{PYTHON} -m ddrank_steps.stages.random_subset --data {input.data:q} --meta {input.meta:q}"
        " --ipc {wildcards.ipc} --round-seed {wildcards.seed} --workers {resources.data_workers}"
        " --out {output.set:q} --manifest {output.manifest:q} --png {output.png:q}"
        " > {log:q} 2>&1"


rule reference_set:
    input:
        data="results/datasets/{dataset}/data.pt",
        meta="results/datasets/{dataset}/meta.json",
        code=stage_code("reference_set"),
    output:
        "results/sets/{dataset}/reference/ipc{ipc}/{kind}.pt",
    log:
        "results/logs/reference_set/{dataset}/ipc{ipc}/{kind}.log",
    resources:
        mem_mb=2000,
        runtime=30,
        data_workers=data_workers,
    params:
        seed=config["seed"],
    shell:
        "{PYTHON} -m ddrank_steps.stages.reference_set --kind {wildcards.kind}"
        " --data {input.data:q} --meta {input.meta:q} --ipc {wildcards.ipc}"
        " --seed {params.seed} --workers {resources.data_workers} --out {output:q}"
        " > {log:q} 2>&1"


rule syn_set:
    input:
        unpack(syn_set_inputs),
    output:
        "results/sets/{dataset}/syn/{method}.pt",
    log:
        "results/logs/syn_set/{dataset}/{method}.log",
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        args=syn_set_args,
    shell:
        "{PYTHON} -m ddrank_steps.stages.syn_set --method {wildcards.method:q}"
        " --images {input.images:q} --meta {input.meta:q} {params.args}"
        " --out {output:q} > {log:q} 2>&1"
