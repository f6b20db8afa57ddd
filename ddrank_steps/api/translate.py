"""DD-Ranking's evaluator settings (its YAML configs and constructor keywords) as a ddrank
config: one method, one metric.

The four reference classes each read their own keys with their own defaults
(`DEFAULTS`, data in `reference_defaults.yaml`). `settings_with_defaults` fills them in
and refuses a key no class reads, naming it; `translate` maps every key onto ddrank's
config through the key table (`reference_keys.KEYS`: one handler per key or group of keys
read together), or refuses it with a message naming it. The Python API
(`ddrank_steps.metrics`) and `ddrank import-config` both go through it, so a YAML file and
the same keywords make the same config.

What is deliberately not copied (config/README.md, "Coming from DD-Ranking"): real-hard
trains for its own recipe's epochs (the reference loops for the syn `num_epochs`), one
image size for training and test, and a missing teacher is trained rather than a crash.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from ddrank_steps.api.reference_defaults import (
    CLASSES,
    DEFAULTS,
    IGNORED,
    NATIVE_SIZE,
    REQUIRED_IN_FILE,
    RESIZED_SOURCES,
)
from ddrank_steps.api.reference_keys import (
    CONFIG_ORDER,
    KEYS,
    METRICS,
    PROTOCOL_ORDER,
    Draft,
    model_entry,
    ordered,
)
from ddrank_steps.errors import ConfigError


@dataclass
class Translation:
    """A ddrank config for one method and one metric, and what the user should know."""

    config: dict
    method: str
    metric: str
    notes: list[str] = field(default_factory=list)
    # reference settings that only the Python API uses (where to write the CSV, the rdm copy)
    save_path: str | None = None
    random_data: tuple[str, str] | None = None  # (format, path)


@dataclass(frozen=True)
class Context:
    """What `translate` needs besides the reference settings: which method and metric, the
    set's files, and how the caller runs (the Python API or `ddrank import-config`)."""

    metric: str
    method: str
    images: str  # the set: a .pt file, a class-folder tree or reference:random
    where: str  # how errors name the settings (a file, or the class)
    given: set[str]  # the keys the user set (the others are the class's defaults)
    labels: str | None = None  # the method entry's labels, soft_labels and lr
    soft_labels: str | None = None
    lr: float | str | None = None
    weight: float | None = None  # compute_metrics' lrs_lambda / ars_lambda (None: default)
    resolve_path: Callable[[str], str] = str  # the API makes paths absolute; import keeps them
    cuda_devices: int = 0  # visible GPUs, for dist: true
    has_soft_labels: bool | None = None  # None: whether soft_labels is given
    # eval_full_data: false for a (dataset, model) with no known accuracy trains real-hard,
    # with a note (import-config: the reference's own demo asks for one it lacks); without
    # it the planner reports the missing entry
    train_unknown_real: bool = False
    # the settings came from a config (a file or a dict): a key it omits is None in the
    # reference, not its constructor's default
    from_config: bool = False

    @property
    def soft_labels_given(self) -> bool:
        if self.has_soft_labels is None:
            return self.soft_labels is not None
        return self.has_soft_labels


def settings_with_defaults(
    given: dict, metric: str, where: str, from_file: bool
) -> tuple[dict, list[str]]:
    """The class's settings (`given` over its defaults) and notes on keys it ignores. A
    key no reference class reads is refused, naming it; one that another class reads is
    ignored, as the reference does (one YAML often serves several metrics). A file must
    set the keys its metric cannot do without."""
    if metric not in CLASSES:
        raise ConfigError(f"metric '{metric}' is not one of {sorted(CLASSES)}")
    defaults = DEFAULTS[metric]
    every_key = set().union(*DEFAULTS.values())
    elsewhere = sorted(set(given) - set(defaults) - set(IGNORED) & every_key)
    notes = [
        f"{key}: not read by {CLASSES[metric]} (as in the reference); ignored" for key in elsewhere
    ]
    given = {k: v for k, v in given.items() if k not in elsewhere}
    unknown = sorted(set(given) - set(defaults) - set(IGNORED))
    if unknown:
        _refuse_unknown(unknown, metric, where)
    if from_file:
        missing = [k for k in REQUIRED_IN_FILE[metric] if given.get(k) is None]
        if missing:
            raise ConfigError(
                f"{where}: {metric} ({CLASSES[metric]}) needs {', '.join(missing)}, which the "
                f"file does not set; add {' and '.join(f'`{k}: ...`' for k in missing)}"
            )
    merged = {**copy.deepcopy(defaults), **copy.deepcopy(given)}
    for key in given:
        if given[key] is None and defaults.get(key) is not None and key in REQUIRED_IN_FILE[metric]:
            raise ConfigError(f"{where}.{key} is null; {metric} needs a value")
    return merged, notes


def _refuse_unknown(unknown: list[str], metric: str, where: str) -> None:
    import difflib

    defaults = DEFAULTS[metric]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(defaults), n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ConfigError(
        f"{where}: {', '.join(hints)} {'is' if len(unknown) == 1 else 'are'} not a key of "
        f"any ddranking evaluator; remove it ({CLASSES[metric]} reads: "
        f"{', '.join(sorted(defaults))})"
    )


def translate(ref: dict, ctx: Context) -> Translation:
    """The ddrank config scoring `ctx.images` as `ctx.method` under the reference settings
    `ref` (every key of the class, defaults filled in: `settings_with_defaults`). Each key
    is written by its handler in `reference_keys.KEYS`, in the table's order."""
    d = Draft(ref=ref, ctx=ctx)
    for key in KEYS:
        key.apply(d)
    settings = {"protocol": ctx.metric}
    settings.update((k, d.settings[k]) for k in METRICS[ctx.metric].settings if k in d.settings)
    entry = {"dataset": d.name, "ipc": d.ipc, "images": ctx.images}
    entry["metrics"] = {ctx.metric: settings}
    for key in ("labels", "soft_labels", "lr"):
        if getattr(ctx, key) is not None:
            entry[key] = getattr(ctx, key)
    config = {
        "seed": 0,
        **d.config,
        "datasets": {d.name: d.dataset},
        "protocols": {ctx.metric: ordered(d.protocol, PROTOCOL_ORDER)},
        "methods": {ctx.method: entry},
    }
    return Translation(
        config=ordered(config, CONFIG_ORDER),
        method=ctx.method,
        metric=ctx.metric,
        notes=d.notes,
        save_path=d.save_path,
        random_data=d.random_data,
    )


__all__ = [
    "CLASSES",
    "DEFAULTS",
    "IGNORED",
    "NATIVE_SIZE",
    "REQUIRED_IN_FILE",
    "RESIZED_SOURCES",
    "Context",
    "Translation",
    "model_entry",
    "settings_with_defaults",
    "translate",
]
