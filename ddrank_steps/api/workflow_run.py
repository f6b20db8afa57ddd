"""Running the workflow from Python: what the API and `ddrank` do instead of training.

One execution path (docs/architecture.md): a caller writes a config file and this runs
Snakemake on it, in-process, exactly as `snakemake --snakefile workflow/Snakefile
--directory WORK --configfile FILE` would (the workflow profile included: rerun of
incomplete jobs, its core count unless one is given), printing Snakemake's own progress.
An interrupted run keeps every finished job; the next call picks up from there.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import yaml

from ddrank_steps.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


class WorkflowFailed(RuntimeError):
    """A job of the workflow failed; its log says why."""


def check_config(config: dict, where: str) -> dict:
    """The config validated by the workflow's schema (defaults filled in) and planned,
    so a mistake is reported here, naming the key, before any job starts."""
    return checked_plan(config, where)[0]


def checked_plan(config: dict, where: str):
    """(the checked config, its Plan): `check_config`, with the plan it built."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from ddrank_steps.planning.builder import build_plan
    from ddrank_steps.planning.schema import schema_problem

    checked = yaml.safe_load(yaml.safe_dump(config))  # plain types, as the file will hold
    # the workflow's own first line (key path, what is wrong, the closest valid key), not
    # Snakemake's bare "Error validating config file"
    problem = schema_problem(checked, SCHEMA, [where])
    if problem:
        raise ConfigError(problem.splitlines()[0])
    try:  # fills in the schema's defaults, as the workflow's own validate does
        validate(checked, str(SCHEMA))
    except WorkflowError as exc:
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None
    return checked, build_plan(checked)


def write_config(config: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path


def run(config_file: Path, work_dir: Path, targets: list[str], cores: int | None = None) -> None:
    """Run the workflow on `config_file` in `work_dir` up to `targets` (paths relative to
    it). Raises WorkflowFailed when a job fails."""
    if not SNAKEFILE.is_file():
        raise ConfigError(
            f"the workflow is not beside the package ({SNAKEFILE} is missing): install ddrank "
            "from its repository with `pip install -e .`"
        )
    from snakemake.cli import args_to_api, parse_args

    # targets first: --configfile takes every word after it
    argv = [*targets, "--snakefile", str(SNAKEFILE), "--directory", str(work_dir)]
    # progress ("n of m steps done") and errors, not every job's shell command
    argv += ["--quiet", "rules", "host", "reason"]
    if cores is not None:
        argv += ["--cores", str(cores)]
    argv += ["--configfile", str(config_file)]
    parser, args = parse_args(argv)
    with _kept_cwd(), _inherited_stdout():
        ok = args_to_api(args, parser)
    if not ok:
        raise WorkflowFailed(
            f"the workflow stopped: a job failed (see the error above; its log is under "
            f"{work_dir / 'results' / 'logs'}) or the run was interrupted. Finished jobs are "
            "kept: fix the cause if there is one and call again to resume"
        )


@contextlib.contextmanager
def _inherited_stdout():
    """Jobs inherit the process's stdout instead of `sys.stdout`, which Snakemake hands to
    them when it looks like a file: under pytest (or any capture) it has no descriptor to
    pass. Every job writes to its log anyway."""
    import importlib

    shell = importlib.import_module("snakemake.shell")  # the module, not its `shell` class
    before = shell.STDOUT
    shell.STDOUT = None
    try:
        yield
    finally:
        shell.STDOUT = before


@contextlib.contextmanager
def _kept_cwd():
    """Snakemake changes into the work directory; the caller's stays theirs."""
    before = os.getcwd()
    try:
        yield
    finally:
        os.chdir(before)


def read_score_of_run(
    config_file: Path, work_dir: Path, score_file: str, cores: int | None = None
) -> dict:
    """The score file `score_file` (relative to `work_dir`) the workflow wrote, checked in
    full; a damaged one is an InputError whose fix is the `snakemake` command that redoes
    it with this call's config (what calling again does only once the file is gone)."""
    from ddrank_steps.reporting.score_records import read_score
    from ddrank_steps.runtime.rerun_command import rerun_args

    path = Path(work_dir) / score_file
    try:
        read_score(path)
    except InputError as exc:
        args = rerun_args(
            launch_dir=os.getcwd(),
            run_dir=work_dir,
            snakefile=SNAKEFILE,
            configfiles=[config_file],
            config_args=None,
            cores=cores,
        )
        fix = f"rebuild it and what is made from it: snakemake {args} --forcerun {score_file}"
        raise InputError(exc.path, exc.field, exc.problem, fix) from None
    return json.loads(path.read_text())
