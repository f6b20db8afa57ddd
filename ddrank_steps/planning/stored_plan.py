"""The workflow's plan, kept between runs: a no-change `snakemake` loads it instead of
planning again, so it imports no torch and runs none of the plan-time checks.

`build_plan` checks model, augmentation and transform names with torch and torchvision,
builds every model on the meta device and reads the methods' `.pt` files; on the demo
that is most of a no-change run's time. Its result depends only on what the key below
holds, so a plan stored under that key is the plan `build_plan` would return:

- the validated config (defaults filled in) and the working directory (relative paths,
  and the error messages that name it);
- the contents of every ddrank_steps source and data file, and of the config schema
  (which holds the protocol defaults), so a code change re-plans;
- the machine (its host name and CUDA_VISIBLE_DEVICES);
- the Python version and the installed torch, torchvision and timm (which model names
  exist);
- the state (mtime, size, mode, or absence) of every path the build looked at, as the
  code that looked recorded it (`Plan.reads`, reads.py): today the methods' images,
  labels, soft_labels and LR files, each used dataset's `root` and the folders in it two
  levels down, and the teacher checkpoints (and their folders) looked for under
  `teacher_dir`. No list of them is kept here: a stored plan is checked against exactly
  the paths its own build looked at, each stat'ed again on every load, so a path that a
  new check reads is watched as soon as the check records it.

Beside the plan it stores what each package file imports (code_inputs.import_table),
which the rules' code inputs are walked from: valid while the sources are, as the key says.

Only a successful plan is stored: a config or file the checks reject is checked again on
the next run, and reported again. A plan that uses pretrained weights is never stored
(they are looked up in caches that the environment chooses). A cache file that cannot be
read, or holds another key, is ignored and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from ddrank_steps.planning import code_inputs
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.plan import Plan
from ddrank_steps.planning.reads import Reads
from ddrank_steps.protocol_defaults import SCHEMA_FILE
from ddrank_steps.runtime.atomic_write import atomic_path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ddrank_steps/
# Next to Snakemake's own state, relative to the working directory (the one --directory
# names), so each results tree has its own plan.
CACHE_FILE = Path(".snakemake") / "ddrank" / "plan.pickle"
# Bumped when what the file holds changes shape.
FORMAT = 2
# Packages whose version decides which model and transform names the checks accept.
PACKAGES = ("torch", "torchvision", "timm")


def cached_plan(
    config: dict,
    build: Callable[[dict], Plan],
    cache_file: str | os.PathLike = CACHE_FILE,
    write: bool = True,
) -> Plan:
    """The plan of `config`: the stored one when its key still matches, else `build`'s,
    stored for the next run when it may be and `write` is set (the workflow's main
    process: a cluster job that parses the workflow again reads the plan, never writes)."""
    plan = load(cache_file, config)
    if plan is not None:
        return plan
    plan = build(config)
    if write and cacheable(config):
        store(cache_file, config, plan)
    return plan


def load(cache_file: str | os.PathLike, config: dict) -> Plan | None:
    """The plan stored for `config` while every path its build looked at is as it was, or
    None: no file, another key, or a file that cannot be read (truncated, written by
    other code) is planned again, never trusted."""
    try:
        blob = pickle.loads(Path(cache_file).read_bytes())
    except Exception:  # missing, truncated, another version's: the same answer, plan again
        return None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        return None
    plan, imports = blob.get("plan"), blob.get("imports")
    if not isinstance(plan, Plan) or not isinstance(imports, dict):
        return None
    if not isinstance(getattr(plan, "reads", None), Reads):
        return None
    if blob.get("key") != plan_key(config, plan.reads.now()):
        return None
    code_inputs.use_import_table(imports)
    return plan


def store(cache_file: str | os.PathLike, config: dict, plan: Plan) -> None:
    """Write the plan atomically, under the key of the states its build saw (a path that
    changed since then makes the next load plan again); a cache that cannot be written
    costs time, not a run."""
    # the code inputs' import walk too: the key holds every source file's contents
    blob = {
        "format": FORMAT,
        "key": plan_key(config, plan.reads.states),
        "plan": plan,
        "imports": code_inputs.import_table(),
    }
    try:
        with atomic_path(cache_file) as tmp:
            tmp.write_bytes(pickle.dumps(blob, pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass


def plan_key(config: dict, looked: dict[str, list | None] | None = None) -> str:
    """The key of `config`'s plan given `looked`, the state of every path its build
    looked at (`Plan.reads`). Without `looked`, the key a plan built now would be stored
    under: the plan is built, to learn what it looks at."""
    if looked is None:
        looked = build_plan(config).reads.states
    material = {
        "format": FORMAT,
        "config": json.dumps(config, sort_keys=True, default=repr),
        "cwd": os.getcwd(),
        # the same folder seen from another machine (a shared file system) is planned
        # there again: a check of the devices at plan time must never see another's
        "host": platform.node(),
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "python": sys.version,
        "packages": {name: _version(name) for name in PACKAGES},
        "sources": source_digest(),
        "paths": sorted([name, state] for name, state in looked.items()),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def source_digest() -> str:
    """One hash of every ddrank_steps file the planner may run or read, and of the
    config schema, whose protocol defaults it reads (protocol_defaults.py)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"schema\0" + hashlib.sha256(SCHEMA_FILE.read_bytes()).digest())
    return digest.hexdigest()


def cacheable(config: dict) -> bool:
    """Whether a plan of `config` may be stored: not when a model takes pretrained
    weights, whose presence in the torch hub or Hugging Face cache the checks look up."""
    for protocol in (*config.get("protocols", {}).values(), *_real_protocols(config)):
        if _pretrained(protocol.get("model_options")):
            return False
        for entry in protocol.get("teacher_model_names") or []:
            if isinstance(entry, dict) and _pretrained(entry.get("model_options")):
                return False
    return True


def _real_protocols(config: dict) -> Iterable[dict]:
    return (config.get("real_protocols") or {}).values()


def _pretrained(options) -> bool:
    return isinstance(options, dict) and bool(options.get("pretrained"))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
