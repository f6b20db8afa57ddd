"""The Snakemake command that redoes a result, as the user can paste it.

A "Fix:" line that says `snakemake --forcerun FILE` is wrong for anyone who ran with their
own `--configfile`: pasted as it is, it plans the demo config and would overwrite their
leaderboard (or fails, for a run file the demo does not key). So the workflow computes the
arguments that select *this* run (cores, Snakefile, working directory, config files and
`--config` values) once, while it parses (`rerun_args`), and hands them to every job in
the environment (`ENV_RERUN_ARGS`, exported by the shell prefix; an environment variable,
not a param, so it never reruns a job). A job's message then names `rerun_command(file)`.

Snakemake has already changed into `--directory` when the workflow is parsed, so where the
user started it is read from the shell's `PWD`. Started in the working directory itself,
the command is the short one typed there (Snakemake's default Snakefile left out, paths
inside it relative); started anywhere else, it names the Snakefile, the working
directory and the config files by absolute paths, so it can be pasted from anywhere.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

# Read by `rerun_command`: the arguments of the run, exported in every job's shell prefix.
ENV_RERUN_ARGS = "DDRANK_RERUN_ARGS"

# Where Snakemake looks for a Snakefile when none is named (the ones a checkout has).
DEFAULT_SNAKEFILES = ("Snakefile", "workflow/Snakefile")


def rerun_args(
    *,
    launch_dir: str | Path | None,
    run_dir: str | Path,
    snakefile: str | Path,
    configfiles: list[str | Path],
    config_args: list[str] | None,
    cores: int | None,
) -> str:
    """The command-line arguments (shell-quoted, one string) that select this run:
    `--cores`, the Snakefile and the working directory (left out where Snakemake finds
    them by itself: started in `run_dir` with its default Snakefile), every
    `--configfile` and every `--config` value, in the order Snakemake applies them.
    `launch_dir`: where the user started Snakemake (None: unknown)."""
    run_dir = Path(run_dir).absolute()
    here = launch_dir is not None and Path(launch_dir).resolve() == run_dir.resolve()

    def shown(path: str | Path) -> str:
        full = Path(path).absolute()
        return (
            str(full.relative_to(run_dir)) if here and full.is_relative_to(run_dir) else str(full)
        )

    args: list[str] = []
    if cores is not None:
        args += ["--cores", str(cores)]
    if not here or shown(snakefile) not in DEFAULT_SNAKEFILES:
        args += ["--snakefile", shown(snakefile)]
    if not here:
        args += ["--directory", str(run_dir)]
    for configfile in configfiles:
        args += ["--configfile", shown(configfile)]
    if config_args:
        args += ["--config", *config_args]
    return shlex.join(args)


def rerun_command(target: str | Path) -> str:
    """`snakemake <this run's arguments> --forcerun TARGET`: redo TARGET and everything made
    from it, with the config of the run this job belongs to. Outside a workflow job (a
    stage run by hand) the run's arguments are unknown, and the line says to add them."""
    args = os.environ.get(ENV_RERUN_ARGS)
    forcerun = shlex.join(["--forcerun", str(target)])  # last: --forcerun takes every word after
    if args is None:
        return f"snakemake {forcerun} (add the --configfile/--config of your run)"
    return " ".join(part for part in ("snakemake", args, forcerun) if part)


def shell_export(args: str) -> str:
    """The shell-prefix statement that hands `args` to every job (`ENV_RERUN_ARGS`).
    Snakemake formats the prefix with the job's fields, so braces in a `--config` value are
    doubled to stay literal."""
    quoted = shlex.quote(args).replace("{", "{{").replace("}", "}}")
    return f"export {ENV_RERUN_ARGS}={quoted}; "
