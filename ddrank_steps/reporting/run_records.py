"""Reading run files for the score stage and the run figures, every field they use checked.

A run file is what `stages/train.py` writes (or `stages/given_accuracy.py`, for a known
real-hard accuracy): `selected` {acc, lr, epoch} (lr and epoch null for a given accuracy),
`runs` (optional; per LR: `lr` and its `curve` of {epoch, test, train_loss}, a non-finite value
written as null), optional `given` {source} and `data` (the normalisation it ran in).
A file cut short or edited into another shape is an InputError naming the file, the field
and the fix, before its accuracy reaches a score.
"""

from __future__ import annotations

from ddrank_steps.errors import InputError
from ddrank_steps.runtime.checked_read import (
    checked_field,
    checked_records,
    number,
    read_cached_json,
    rebuild_fix,
)


def read_run(path: str) -> dict:
    """The run file at `path`, checked (see the module docstring)."""
    run = read_cached_json(path)
    if not isinstance(run, dict):
        raise InputError(path, "file", "is not a JSON object", rebuild_fix(path))
    selected = checked_field(run, "selected", dict, path, "selected")
    acc = number(checked_field(selected, "acc", object, path, "selected.acc"), path, "selected.acc")
    if not 0 <= acc <= 1:
        raise InputError(
            path, "selected.acc", f"is {acc}, not a fraction in [0, 1]", rebuild_fix(path)
        )
    given = "given" in run
    for key in ("lr", "epoch"):
        name = f"selected.{key}"
        number(checked_field(selected, key, object, path, name), path, name, nullable=given)
    if given:
        checked_field(
            checked_field(run, "given", dict, path, "given"), "source", str, path, "given.source"
        )
    elif "runs" in run:  # the curves: the score judges divergence from them
        _check_lr_runs(run, path)
    if run.get("data") is not None:
        checked_field(run, "data", dict, path, "data")
    return run


def _check_lr_runs(run: dict, path: str) -> None:
    """Every LR's run: its LR and its curve of evaluated epochs."""
    for where, lr_run in checked_records(run, "runs", path):
        number(checked_field(lr_run, "lr", object, path, f"{where}.lr"), path, f"{where}.lr")
        for j, point in enumerate(checked_field(lr_run, "curve", list, path, f"{where}.curve")):
            name = f"{where}.curve[{j}]"
            if not isinstance(point, dict):
                raise InputError(path, name, "is not an object", rebuild_fix(path))
            for key in ("epoch", "test", "train_loss"):
                number(point.get(key), path, f"{name}.{key}", nullable=key != "epoch")
