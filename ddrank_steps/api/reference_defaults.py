"""DD-Ranking's defaults, read once from `reference_defaults.yaml` (data, commented there):
the keys each evaluator class reads with their constructor defaults (`DEFAULTS`), the
`compute_metrics` weights (`COMPUTE_DEFAULTS`), the keys a YAML file must set
(`REQUIRED_IN_FILE`), the keys accepted and ignored (`IGNORED`), what a null key means
where that is not its class's default (`IF_NULL`), and the reference's image size per
source (`NATIVE_SIZE`, `RESIZED_SOURCES`). The translator and the evaluator classes both
read them from here. `init_signature` is the reference's constructor signature
(`signatures`), which the evaluator classes show.
"""

from __future__ import annotations

import inspect
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
# metric -> the CSV the reference writes without save_path, under
# ./results/{dataset}/{model_name}/ipc{ipc}/
DEFAULT_SAVE_NAME: dict[str, str] = load()["default_save_name"]
# what ddrank does differently on purpose, printed once per process by the API
DIFFERENCES: list[str] = load()["differences"]


def init_signature(metric: str, own: tuple[str, ...]) -> inspect.Signature:
    """The reference constructor's signature for `metric` (self, config, its keys in its
    order with its defaults), then ddrank's keywords `own` (keyword-only, default None),
    then **keys: other keys the reference's Config reads."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("self", kind), inspect.Parameter("config", kind, default=None)]
    for item in load()["signatures"][metric]:
        name, default = next(iter(item.items())) if isinstance(item, dict) else (item, None)
        if not isinstance(item, dict):
            default = DEFAULTS[metric][item]
        params.append(inspect.Parameter(name, kind, default=default))
    only = inspect.Parameter.KEYWORD_ONLY
    params += [inspect.Parameter(name, only, default=None) for name in own]
    params.append(inspect.Parameter("keys", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)
