"""Planning: from a validated config to the jobs of the DAG. The config schema (`schema`),
the plan (`plan`), the code each job runs (`code_inputs`), the plan stored between runs
(`stored_plan`) and the set sizes known before any set exists (`set_size`).

The workflow imports it while it builds the DAG, so importing a module here is plain
Python: torch is imported inside the functions that check names, never at import time.
May import the library (models, augment, transforms, data, training, metric_registry),
runtime and the core modules; never `stages` or `api`.
"""
