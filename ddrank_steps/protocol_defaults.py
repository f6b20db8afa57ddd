"""A protocol's defaults, from the one place that states them: the config schema's
`$defs.protocol` (workflow/schemas/config.schema.yaml).

The schema's validation fills them into every protocol of a config (and every
`real_protocols` entry) before the planner sees it. The planner reads them here for what
no validation fills: the reference's real-data table
(planning/reference_real_protocols.yaml).

Some keys default to null, which means something the schema can only say in words:

- `precision`: null is fp32 (`UNNAMED_PRECISION`). A run protocol names its precision
  only when it is another, so every run made before the key existed keeps its cache key;
  the planner, the train stage, the engine and the leaderboard read a run protocol's
  arithmetic with `precision_of`.
- `select`: null is best (`UNNAMED_SELECT`), the reference's; the planner resolves it.
- `test_interval`: null is the metric's, a metric registry setting (`Metric.test_interval`).

Core module: plain Python, no torch, importable from every layer.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

# the package's schema, beside it in the repository (workflow/ next to ddrank_steps/)
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

# The arithmetic of a run protocol that names no precision: the reference's.
UNNAMED_PRECISION = "fp32"
# The selection rule of a protocol whose `select` is null: the reference's.
UNNAMED_SELECT = "best"


@cache
def _protocol_schema() -> dict:
    import yaml

    # libyaml's loader where PyYAML has it: the workflow reads the schema on every run
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SCHEMA_FILE.read_text(), Loader=loader)["$defs"]["protocol"]


def protocol_defaults() -> dict:
    """Every key of a protocol that has a default, with it (a fresh copy)."""
    properties = _protocol_schema()["properties"]
    return {
        key: copy.deepcopy(spec["default"]) for key, spec in properties.items() if "default" in spec
    }


def precision_of(protocol: dict) -> str:
    """The arithmetic of a protocol or run protocol; one without a precision is fp32."""
    return protocol.get("precision") or UNNAMED_PRECISION
