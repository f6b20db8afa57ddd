"""The "Fix:" command of a damaged result carries the arguments of the run that printed it."""

from __future__ import annotations

import shlex
import subprocess

from ddrank_steps.runtime import rerun_command
from ddrank_steps.runtime.checked_read import rebuild_fix
from ddrank_steps.runtime.rerun_command import ENV_RERUN_ARGS, rerun_args, shell_export

RUN = "results/runs/digits/syn-kmeans/0123456789/seed0.json"


def test_the_run_arguments_keep_config_files_config_values_and_folders(tmp_path):
    launch = tmp_path / "repo"
    args = rerun_args(
        launch_dir=launch,
        run_dir=tmp_path / "work",
        snakefile=launch / "workflow" / "Snakefile",
        configfiles=[launch / "my config.yaml", tmp_path / "lab.yaml"],
        config_args=["num_eval=1", "resources={'jobs_per_gpu': 2}"],
        cores=4,
    )
    assert shlex.split(args) == [
        *("--cores", "4", "--directory", str(tmp_path / "work")),
        *("--configfile", "my config.yaml", "--configfile", str(tmp_path / "lab.yaml")),
        *("--config", "num_eval=1", "resources={'jobs_per_gpu': 2}"),
    ]
    # Snakemake's defaults are left out: the short command a user types in the checkout
    plain = rerun_args(
        launch_dir=launch,
        run_dir=launch,
        snakefile=launch / "workflow" / "Snakefile",
        configfiles=[],
        config_args=None,
        cores=None,
    )
    assert plain == ""
    other = rerun_args(
        launch_dir=launch,
        run_dir=launch,
        snakefile=tmp_path / "ddrank" / "workflow" / "Snakefile",
        configfiles=[],
        config_args=[],
        cores=2,
    )
    assert shlex.split(other) == [
        "--cores",
        "2",
        "--snakefile",
        str(tmp_path / "ddrank/workflow/Snakefile"),
    ]


def test_a_fix_names_the_run_arguments_and_forcerun_last(monkeypatch):
    monkeypatch.setenv(ENV_RERUN_ARGS, "--cores 2 --configfile 'my config.yaml'")
    command = rerun_command.rerun_command(RUN)
    assert command == f"snakemake --cores 2 --configfile 'my config.yaml' --forcerun {RUN}"
    assert rebuild_fix(RUN).endswith(command)
    monkeypatch.setenv(ENV_RERUN_ARGS, "")  # the defaults: nothing to add
    assert rerun_command.rerun_command(RUN) == f"snakemake --forcerun {RUN}"
    monkeypatch.delenv(ENV_RERUN_ARGS)  # a stage run by hand: the line says what to add
    assert "add the --configfile/--config of your run" in rerun_command.rerun_command(RUN)


def test_the_shell_export_survives_snakemake_formatting_and_the_shell():
    args = "--configfile 'a b.yaml' --config \"x={'k': 1}\""
    prefix = shell_export(args).format()  # Snakemake formats the prefix with the job
    out = subprocess.run(
        ["bash", "-c", f'{prefix}printf %s "${ENV_RERUN_ARGS}"'], capture_output=True, text=True
    )
    assert out.stdout == args
