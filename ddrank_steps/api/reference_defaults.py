"""DD-Ranking's defaults, read once from `reference_defaults.yaml` (data, commented there):
the keys each evaluator class reads with their constructor defaults (`DEFAULTS`), the
`compute_metrics` weights (`COMPUTE_DEFAULTS`), the keys a YAML file must set
(`REQUIRED_IN_FILE`), the keys accepted and ignored (`IGNORED`), what a null key means
where that is not its class's default (`IF_NULL`), and the reference's image size per
source (`NATIVE_SIZE`, `RESIZED_SOURCES`). The translator and the evaluator classes both
read them from here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

FILE = Path(__file__).with_name("reference_defaults.yaml")


@cache
def load() -> dict:
    """The file's contents, with the keys it lists under `tuples` made tuples again (YAML
    has none)."""
    data = yaml.safe_load(FILE.read_text())
    for defaults in data["defaults"].values():
        for key in data["tuples"]:
            if isinstance(defaults.get(key), list):
                defaults[key] = tuple(defaults[key])
    return data


# metric -> the reference class computing it
CLASSES: dict[str, str] = load()["classes"]
# metric -> every key its class reads, with the class's constructor default
DEFAULTS: dict[str, dict] = load()["defaults"]
# metric -> compute_metrics' weight keyword and its default (lrs_lambda, ars_lambda)
COMPUTE_DEFAULTS: dict[str, dict] = load()["compute_metrics"]
REQUIRED_IN_FILE: dict[str, tuple[str, ...]] = {
    metric: tuple(keys) for metric, keys in load()["required_in_file"].items()
}
IGNORED: dict[str, str] = load()["ignored"]
NATIVE_SIZE: dict[str, int] = load()["native_size"]
RESIZED_SOURCES: set[str] = set(load()["resized_sources"])
# key -> what it means when set to null, where that is not the class's default
IF_NULL: dict[str, object] = load()["if_null"]
