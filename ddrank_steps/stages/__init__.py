"""The stages: one command-line module per Snakemake rule.

Each reads its inputs, calls the library (the modules beside this package) and writes its
outputs atomically; none holds logic that another stage or the planner needs. A rule runs
its stage as `python -m ddrank_steps.stages.<rule>`.
"""

from ddrank_steps.runtime.orphans import watch_master

# `python -m ddrank_steps.stages.<rule>` imports this package before the stage runs
# anything, so every stage (and every torchrun worker) stops with the run that started it.
# Outside a workflow job (no DDRANK_MASTER_PID) this does nothing.
watch_master()
