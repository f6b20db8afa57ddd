"""ddrank_steps: the Python package of the ddrank workflow, grouped by layer
(docs/architecture.md has the diagram):

- `api/`: DD-Ranking's classes and config, the `ddrank` command, the workflow runner;
- `planning/`: config schema, the plan (cache keys, jobs, checks), code inputs;
- `stages/`: one command per Snakemake rule;
- library: `training/`, `data/`, `models/`, `augment/`, `transforms/`,
  `metric_registry/`, `reporting/`;
- `runtime/`: atomic output, checked reads, the GPU lease, the run lock;
- core modules beside this file: `errors`, `paths`, `seeding`, `formulas`, `versions`,
  `stage_cli`; and the drop-in re-exports `metrics` and `config`.

A layer imports only the layers below it (tests/test_layers.py checks it). Importing the
package must stay cheap (no torch), because the Snakefile imports the planner from it
while it builds the DAG.
"""

__version__ = "0.1.0"
