"""The package files a job runs, and their digest: a param of the job, so that a change
to the content of the code it runs reruns exactly the jobs that run the changed code.

A digest, not the files as inputs: an input is known to Snakemake by its path and its
date, so a moved or copied project, a fresh clone or a touched file would rerun every job
(README "Moving a project"). The digest covers each file's path relative to the package
and its content (versions.code_digest), as the run files record it, and is part of the
key of Snakemake's between-workflow cache (the params are).

Read by the workflow while it builds the DAG, once per job: plain Python (no torch). Each
file is parsed once per process, or not at all when the workflow's stored plan brings
the table of what each file imports (stored_plan.py).

The model families, the batch augmentations and the metric modules are imported on first
use or by name (through importlib, which the walk does not follow), so a stage's own
sources name none of them; the functions for jobs that build a model, augment or score
add the ones their protocol or metric names.
"""

from __future__ import annotations

import ast
import functools
import pkgutil
from pathlib import Path

from ddrank_steps.models import family_module
from ddrank_steps.versions import code_digest

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ddrank_steps/


def stage_sources(stage: str) -> list[str]:
    """The files the stage `ddrank_steps.stages.<stage>` runs (without any model family
    or augmentation module: see train_sources and soft_labels_sources)."""
    return module_sources(f"ddrank_steps.stages.{stage}")


def train_sources(run_protocol: dict) -> list[str]:
    """The files a training job runs for its run protocol: the train stage, the family of
    its model and of each of its teachers' models, and its batch augmentation."""
    teachers = run_protocol.get("teachers") or []
    modules = [
        "ddrank_steps.stages.train",
        *_model_modules([run_protocol["model"], *(t["model"] for t in teachers)]),
        *_augmentation_modules(run_protocol.get("augmentation")),
    ]
    return _sources(modules)


def soft_labels_sources(teachers: list[dict]) -> list[str]:
    """The files a soft_labels job runs for its teachers (dicts with `model`): the stage
    and the family of each teacher's model."""
    modules = ["ddrank_steps.stages.soft_labels", *_model_modules(t["model"] for t in teachers)]
    return _sources(modules)


def score_sources(metric: str) -> list[str]:
    """The files a score job runs: the stage and its metric's registry module (the
    registry imports its modules by name, which the walk does not follow)."""
    return _sources(["ddrank_steps.stages.score", *_metric_modules([metric])])


def leaderboard_sources() -> list[str]:
    """The files the leaderboard job runs: the stage and every metric module, since it
    reads each metric's quantities, settings and rank."""
    return _sources(["ddrank_steps.stages.leaderboard", *_metric_modules(_all_metric_names())])


def _all_metric_names() -> list[str]:
    return [m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR / "metric_registry")])]


def plot_sources(stage: str, metric: str) -> list[str]:
    """The files a plot job of one metric runs: the stage and the metric's registry module
    (its quantities, headline first, name what is drawn)."""
    return _sources([f"ddrank_steps.stages.{stage}", *_metric_modules([metric])])


def report_sources() -> list[str]:
    """The files the report job runs: the stage and every metric module (it lays out each
    metric's quantities)."""
    return _sources(["ddrank_steps.stages.report", *_metric_modules(_all_metric_names())])


def module_sources(module: str) -> list[str]:
    """The package files a stage's module runs: itself and every ddrank_steps module it
    imports, transitively. Their digest is a param of its jobs, so a code change reruns them."""
    return list(_module_sources(module))


def digest(sources: list[str]) -> str:
    """The digest of the content of `sources` (files of the package, as the functions
    above list them): what a job's `code` param holds."""
    return _digest_of(tuple(sorted(sources)))


@functools.cache
def _digest_of(sources: tuple[str, ...]) -> str:
    # read once per process and file list: every run of a protocol shares its list
    return code_digest([Path(p) for p in sources])


def _sources(modules: list[str]) -> list[str]:
    return list(_sources_of(tuple(modules)))


@functools.cache
def _sources_of(modules: tuple[str, ...]) -> tuple[str, ...]:
    # many jobs share one module list (every run of a protocol): the union once per list
    return tuple(sorted({path for module in modules for path in _module_sources(module)}))


def _model_modules(models) -> list[str]:
    # None for a name of no built-in family: the planner has rejected it already.
    return [m for m in (family_module(name) for name in models) if m is not None]


def _metric_modules(names) -> list[str]:
    # a metric registered at run time (a test's) has no module in the package
    folder = PACKAGE_DIR / "metric_registry"
    return [f"ddrank_steps.metric_registry.{n}" for n in names if (folder / f"{n}.py").is_file()]


def _augmentation_modules(name: object) -> list[str]:
    where = _augmentation_classes().get(name.lower()) if isinstance(name, str) else None
    return [] if where is None else [f"ddrank_steps.augment.{where[0]}"]


@functools.cache
def _augmentation_classes() -> dict[str, tuple[str, str]]:
    """augment.AUGMENTATION_CLASSES (name -> (module, class)), read from the source: the
    augment package imports torch, which the DAG build must not."""
    path = PACKAGE_DIR / "augment" / "__init__.py"
    for node in ast.parse(path.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "AUGMENTATION_CLASSES":
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} defines no AUGMENTATION_CLASSES literal")


@functools.cache
def _module_sources(module: str) -> tuple[str, ...]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] != "ddrank_steps":
            continue
        base = PACKAGE_DIR.joinpath(*parts[1:])
        candidates = [base / "__init__.py", base.with_suffix(".py")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None or path in seen:
            continue
        seen.add(path)
        for i in range(1, len(parts)):  # parent packages' __init__ run on import too
            todo.append(".".join(parts[:i]))
        todo.extend(_imported_names(path))
    return tuple(sorted(str(p) for p in seen))


# package file (relative to PACKAGE_DIR) -> the names its import statements name
_IMPORTED: dict[str, tuple[str, ...]] = {}


def _imported_names(path: Path) -> tuple[str, ...]:
    """Every module (and `module.name`) an import statement of the file names, anywhere
    in it. Parsed once per process (the stages' walks share most of their files), or
    never where the workflow's stored plan brought the table (`use_import_table`)."""
    rel = str(path.relative_to(PACKAGE_DIR))
    if rel not in _IMPORTED:
        names = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        _IMPORTED[rel] = tuple(names)
    return _IMPORTED[rel]


def import_table() -> dict[str, tuple[str, ...]]:
    """What every package file imports, for stored_plan to store beside the plan: valid
    as long as the package's sources are, which the stored plan's key holds."""
    for path in PACKAGE_DIR.rglob("*.py"):
        _imported_names(path)
    return dict(_IMPORTED)


def use_import_table(table: dict[str, tuple[str, ...]]) -> None:
    """Take a stored import_table() instead of parsing the files again."""
    _IMPORTED.update(table)
