"""The stages: one command-line module per Snakemake rule.

Each reads its inputs, calls the library (the modules beside this package) and writes its
outputs atomically; none holds logic that another stage or the planner needs. A rule runs
its stage as `python -m ddrank_steps.stages.<rule>`.
"""
