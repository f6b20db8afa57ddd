rule prepare_dataset:
    output:
        data=paths.DATASET,
        meta=paths.DATASET_META,
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
        data_workers=data_workers,
    params:
        settings=dataset_settings,
        code=stage_code("prepare_dataset"),
        cache_key=cache_key,
    shell:
        "python -m ddrank_steps.stages.prepare_dataset --name {wildcards.dataset:q}"
        " --settings {params.settings:q} --data {output.data:q} --meta {output.meta:q}"
        " --workers {resources.data_workers} > {log:q} 2>&1"


rule random_subset:
    input:
        **rules.prepare_dataset.output,
    output:
        set=paths.RDM_SET,
        manifest=paths.RDM_MANIFEST,
        # the same images as lossless PNGs of the raw pixels, for image-folder tools
        png=directory(paths.RDM_PNG),
    log:
        "results/logs/random_subset/{dataset}/ipc{ipc}/seed{seed}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
        data_workers=data_workers,
    params:
        code=stage_code("random_subset"),
        cache_key=cache_key,
    shell:
        "python -m ddrank_steps.stages.random_subset --data {input.data:q} --meta {input.meta:q}"
        " --ipc {wildcards.ipc} --round-seed {wildcards.seed} --workers {resources.data_workers}"
        " --out {output.set:q} --manifest {output.manifest:q} --png {output.png:q}"
        " > {log:q} 2>&1"


rule reference_set:
    input:
        **rules.prepare_dataset.output,
    output:
        paths.REFERENCE_SET,
    log:
        "results/logs/reference_set/{dataset}/ipc{ipc}/{kind}.log",
    cache: SHARED_CACHE
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
        data_workers=data_workers,
    params:
        seed=config["seed"],
        code=stage_code("reference_set"),
        cache_key=cache_key,
    shell:
        "python -m ddrank_steps.stages.reference_set --kind {wildcards.kind}"
        " --data {input.data:q} --meta {input.meta:q} --ipc {wildcards.ipc}"
        " --seed {params.seed} --workers {resources.data_workers} --out {output:q}"
        " > {log:q} 2>&1"


rule syn_set:
    input:
        unpack(syn_set_inputs),
    output:
        paths.SYN_SET,
    log:
        "results/logs/syn_set/{dataset}/{method}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        images=syn_images,
        args=syn_set_args,
        code=stage_code("syn_set"),
    shell:
        "python -m ddrank_steps.stages.syn_set --method {wildcards.method:q}"
        " --images {params.images:q} --meta {input.meta:q} {params.args}"
        " --out {output:q} > {log:q} 2>&1"
