"""One reader for the files results are made from: cached results and the user's .pt files.

Every read of a cached result goes through `read_cached_json` or `load_torch`: a damaged
file (a full disk, a copy cut short, a hand edit) then fails with one line that names it and
says how to rebuild it, instead of a bare JSONDecodeError or zip-reader error with no path.
`torch.load` always runs with `weights_only=True`: a set or checkpoint from a stranger must
never run code, so a file holding anything but tensors, numbers, strings and containers of
them is refused, with what to save instead.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from ddrank_steps.errors import InputError
from ddrank_steps.runtime.rerun_command import rerun_command


def rebuild_fix(path: str | Path) -> str:
    """How to get a cached result back: Snakemake reruns the job that writes it and every
    job that reads it, with the config of this run (deleting the file and rerunning does
    the same: rule all asks for every cached result)."""
    return f"rebuild it and what is made from it: {rerun_command(path)}"


# What to save instead, where PyTorch's own message would advise weights_only=False
# (which lets the file run code on load).
PLAIN_OBJECTS_FIX = (
    "save plain tensors, numbers, strings and lists/dicts of them "
    "(e.g. torch.save({'images': images, 'labels': labels}, path)); ddrank loads with "
    "weights_only=True and will not unpickle other objects, since they can run code"
)


def _first_line(exc: BaseException) -> str:
    """The exception's first sentence: PyTorch's messages go on with advice of their own."""
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first}".rstrip(": ")


def _unpickler_finding(exc: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its advice: "Unsupported
    global: GLOBAL mod.Class" for an object, "Unsupported operand 110" for a non-pickle."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported" in ln:
            return ln[ln.index("Unsupported") :].split(" was not")[0]
    return _first_line(exc)


def read_cached_json(path: str | Path, fix: str | None = None) -> dict:
    """A JSON result file; a missing, unreadable or damaged one is an InputError naming it."""
    fix = fix or rebuild_fix(path)
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, "file", "not found", fix) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, "file", f"is damaged ({_first_line(exc)})", fix) from None


def load_torch(path: str | Path, fix: str | None = None, field: str = "file", mmap: bool = False):
    """`torch.load(path, weights_only=True)` on the CPU; any failure is an InputError naming
    the file. `fix` says how to get a good file (default: rebuild a cached result)."""
    fix = fix or rebuild_fix(path)
    if not Path(path).is_file():
        raise InputError(path, field, "not found", fix)
    import torch  # here: the score and leaderboard stages read only JSON

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # PyTorch's advice here (weights_only=False) is the one thing not to do with a
        # file from elsewhere: it lets the file run code. Only its finding is kept.
        finding = _unpickler_finding(exc)
        if finding.startswith("Unsupported global"):
            problem = f"holds objects that are not plain data ({finding})"
            raise InputError(path, field, problem, PLAIN_OBJECTS_FIX) from None
        problem = (
            f"cannot be read by torch.load, it is damaged or not a torch.save file ({finding})"
        )
        raise InputError(path, field, problem, fix) from None
    except Exception as exc:  # a truncated zip, an empty file, a failed mmap: all damage
        raise InputError(
            path, field, f"cannot be read by torch.load, it is damaged ({_first_line(exc)})", fix
        ) from None


# --- the fields a consumer uses ----------------------------------------------------------
# A file that parses can still be cut or edited into the wrong shape (a list for a dict, a
# string for a number, a tensor of the wrong size). Readers check every field they use with
# these, so the job fails naming the file and the field, never with a KeyError or a wrong
# number further on.

_KIND_WORDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def checked_field(container: dict, key: str, kind: type, path, name: str, fix: str | None = None):
    """`container[key]`, which must be of `kind` (`name`: the field's full name, such as
    `rounds[0].seed`); missing or of another kind is an InputError naming file and field."""
    fix = fix or rebuild_fix(path)
    if not isinstance(container, dict) or key not in container:
        raise InputError(path, name, "missing", fix)
    value = container[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problem = f"is {type(value).__name__} {value!r:.40}, expected {_KIND_WORDS.get(kind, kind)}"
        raise InputError(path, name, problem, fix)
    return value


def checked_records(container: dict, key: str, path) -> list[tuple[str, dict]]:
    """`container[key]` as a non-empty list of objects, each with the name an error would
    give it (`key[i]`): a run's LR runs, a score's rounds."""
    records = checked_field(container, key, list, path, key)
    if not records:
        raise InputError(path, key, "is empty", rebuild_fix(path))
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(path, f"{key}[{i}]", "is not an object", rebuild_fix(path))
    return [(f"{key}[{i}]", record) for i, record in enumerate(records)]


def number(value, path, name: str, nullable: bool = False, fix: str | None = None):
    """A JSON number (null too when `nullable`: a diverged run's NaN is written as null),
    returned as is; anything else is an InputError naming file and field."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "a number or null" if nullable else "a number"
        problem = f"is {type(value).__name__} {value!r:.40}, expected {expected}"
        raise InputError(path, name, problem, fix or rebuild_fix(path))
    return value


def tensor(blob: dict, key: str, path, name: str, ndim: int, fix: str | None = None):
    """`blob[key]`, a tensor of `ndim` dimensions with finite values (for a float tensor);
    otherwise an InputError naming the file and the field."""
    import torch

    fix = fix or rebuild_fix(path)
    if not isinstance(blob, dict) or key not in blob:
        raise InputError(path, name, "missing", fix)
    value = blob[key]
    if not isinstance(value, torch.Tensor):
        raise InputError(path, name, f"is {type(value).__name__}, expected a tensor", fix)
    if value.dim() != ndim:
        shape = tuple(value.shape)
        raise InputError(path, name, f"has shape {shape}, expected {ndim} dimensions", fix)
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise InputError(path, name, "holds NaN or infinite values", fix)
    return value
