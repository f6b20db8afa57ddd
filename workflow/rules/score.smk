rule score:
    input:
        unpack(score_inputs),
    output:
        "results/scores/{method}/{metric}.json",
    log:
        "results/logs/score/{method}/{metric}.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        spec=score_spec,
    shell:
        "{PYTHON} -m ddrank_steps.stages.score --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule leaderboard:
    input:
        scores=PLAN.score_targets(),
        code=stage_code("leaderboard"),
    output:
        csv="results/leaderboard.csv",
        html="results/report.html",
    log:
        "results/logs/leaderboard.log",
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "{PYTHON} -m ddrank_steps.stages.leaderboard --csv {output.csv:q} --html {output.html:q}"
        " {input.scores:q} > {log:q} 2>&1"
