# Figures (SVG for the reports, PDF and PNG beside them for papers) and the report.
# Each figure is its own cached job: a new method draws its own figures and redraws its
# groups' figures, nothing else. Outputs marked report() make `snakemake --report`.


# One leaderboard group's headline scores over rounds, methods in rank order.
rule plot_group:
    input:
        scores=group_scores,
    output:
        svg=report(
            f"{paths.GROUP_FIGURE}.svg",
            caption="../report/group.rst",
            category="2. Leaderboard groups",
            subcategory="{dataset} IPC {ipc}",
            labels={"metric": "{metric}", "protocol": "{protocol_name}"},
        ),
        pdf=f"{paths.GROUP_FIGURE}.pdf",
        png=f"{paths.GROUP_FIGURE}.png",
    log:
        "results/logs/plot_group/{dataset}/ipc{ipc}/{metric}/{protocol_name}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=plot_code("plot_group"),
    shell:
        "python -m ddrank_steps.stages.plot_group --dataset {wildcards.dataset:q}"
        " --ipc {wildcards.ipc} --metric {wildcards.metric}"
        " --protocol-name {wildcards.protocol_name:q} --svg {output.svg:q}"
        " --pdf {output.pdf:q} --png {output.png:q} {input.scores:q} > {log:q} 2>&1"


# One score's terms side by side, and the differences it is made of.
rule plot_terms:
    input:
        score=paths.SCORE,
    output:
        svg=report(
            f"{paths.TERMS_FIGURE}.svg",
            caption="../report/terms.rst",
            category="3. Terms of each score",
            subcategory="{metric}",
            labels={"method": "{method}", "metric": "{metric}"},
        ),
        pdf=f"{paths.TERMS_FIGURE}.pdf",
        png=f"{paths.TERMS_FIGURE}.png",
    log:
        "results/logs/plot_terms/{method}/{metric}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=plot_code("plot_terms"),
    shell:
        "python -m ddrank_steps.stages.plot_terms --score {input.score:q}"
        " --svg {output.svg:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


# One training job's test accuracy per epoch for each LR of its grid.
rule plot_run:
    input:
        run=run_file_of,
    output:
        svg=report(
            f"{paths.RUN_FIGURE}.svg",
            caption="../report/run.rst",
            category="4. Training runs",
            subcategory="{dataset} {set}",
            labels={"set": "{set}", "protocol": "{protocol}", "seed": "{seed}"},
        ),
        pdf=f"{paths.RUN_FIGURE}.pdf",
        png=f"{paths.RUN_FIGURE}.png",
    log:
        "results/logs/plot_run/{dataset}/{set}/{protocol}/seed{seed}.log",
    wildcard_constraints:
        set=r"real|rdm-ipc\d+|syn-[A-Za-z0-9][A-Za-z0-9_.+-]*",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=stage_code("plot_run"),
    shell:
        "python -m ddrank_steps.stages.plot_run --run {input.run:q}"
        " --svg {output.svg:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


# A method's syn set beside the first round's random subset of the same IPC.
rule plot_gallery:
    input:
        unpack(gallery_inputs),
    output:
        svg=report(
            f"{paths.GALLERY_FIGURE}.svg",
            caption="../report/gallery.rst",
            category="5. Sets",
            subcategory="{dataset}",
            labels={"method": "{method}"},
        ),
        pdf=f"{paths.GALLERY_FIGURE}.pdf",
        png=f"{paths.GALLERY_FIGURE}.png",
    log:
        "results/logs/plot_gallery/{dataset}/{method}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        args=gallery_args,
        code=stage_code("plot_gallery"),
    shell:
        "python -m ddrank_steps.stages.plot_gallery --method {wildcards.method:q}"
        " --syn {input.syn:q} --rdm {input.rdm:q} --meta {input.meta:q} {params.args}"
        " --svg {output.svg:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


# The workflow's own report: one self-contained HTML page that opens offline.
rule report:
    input:
        leaderboard=rules.leaderboard.output.csv,
        scores=PLAN.score_targets(),
        figures=report_figures(),
    output:
        report(paths.REPORT, caption="../report/report.rst", category="1. Leaderboard"),
    log:
        "results/logs/report.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=digest(report_sources()),
    shell:
        "python -m ddrank_steps.stages.report --leaderboard {input.leaderboard:q}"
        " --out {output:q} {input.scores:q} > {log:q} 2>&1"
