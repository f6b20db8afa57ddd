"""Planning: from a validated config to the jobs of the DAG, one job per module:

- `schema`: the config checked against the workflow's schema, reported in one line;
- `checks`: the config checks the schema cannot make (names, files, model sizes);
- `keys`: the canonical run protocol of a run, its cache key and its result file;
- `reference_tables`: the reference's real-data recipes and known accuracies;
- `builder`: `build_plan`, which fills a Plan from a config, metric by metric;
- `plan`: the Plan, and the questions the rules ask of it;
- `reads`: the paths a build looked at, with their state, which `stored_plan` keys on;
- `stored_plan`: the plan kept between runs, loaded without torch;
- `set_size`: the set sizes known before any set exists;
- `code_inputs`: the package files each job runs.

The workflow imports it while it builds the DAG, so importing a module here is plain
Python: torch is imported inside the functions that check names, never at import time.
May import the library (models, augment, transforms, data, training, metric_registry),
runtime and the core modules; never `stages` or `api`.
"""
