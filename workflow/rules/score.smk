rule score:
    input:
        unpack(score_inputs),
    output:
        paths.SCORE,
    log:
        "results/logs/score/{method}/{metric}.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        spec=score_spec,
        code=score_code,
    shell:
        "python -m ddrank_steps.stages.score --spec {params.spec:q} --out {output:q}"
        " > {log:q} 2>&1"


rule leaderboard:
    input:
        scores=PLAN.score_targets(),
    output:
        csv=report(
            paths.LEADERBOARD,
            caption="../report/leaderboard.rst",
            category="1. Leaderboard",
        ),
    log:
        "results/logs/leaderboard.log",
    conda:
        "../envs/ddrank.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=digest(leaderboard_sources()),
    shell:
        "python -m ddrank_steps.stages.leaderboard --csv {output.csv:q} {input.scores:q}"
        " > {log:q} 2>&1"
