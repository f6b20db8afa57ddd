"""Interfaces: what a user calls. DD-Ranking's evaluator classes (`evaluators`, on
`evaluator_base`), its `Config` (`config`), the translation of its keys and YAML files into a
ddrank config (`translate`), the `ddrank` command (`ddrank_command`) and the in-process
Snakemake runner they all end in (`workflow_run`).

One execution path (docs/architecture.md): nothing here trains. Every call writes a config
and runs the workflow. May import every layer below it (planning, the library, runtime and
the core modules); nothing else in the package imports it, except the public re-exports
`ddrank_steps.metrics` and `ddrank_steps.config`.
"""
