"""The "Fix:" command of a damaged result carries the arguments of the run that printed it."""

from __future__ import annotations

import shlex
import subprocess

from ddrank_steps.runtime import rerun_command
from ddrank_steps.runtime.checked_read import rebuild_fix
from ddrank_steps.runtime.rerun_command import ENV_RERUN_ARGS, rerun_args, shell_export

RUN = "results/runs/digits/syn-kmeans/0123456789/seed0.json"


def test_started_elsewhere_the_arguments_are_absolute_and_complete(tmp_path):
    repo, work = tmp_path / "repo", tmp_path / "work"
    args = rerun_args(
        launch_dir=tmp_path,
        run_dir=work,
        snakefile=repo / "workflow" / "Snakefile",
        configfiles=[work / "my config.yaml", tmp_path / "lab.yaml"],
        config_args=["num_eval=1", "resources={'jobs_per_gpu': 2}"],
        cores=4,
    )
    assert shlex.split(args) == [
        *("--cores", "4", "--snakefile", str(repo / "workflow" / "Snakefile")),
        *("--directory", str(work), "--configfile", str(work / "my config.yaml")),
        *("--configfile", str(tmp_path / "lab.yaml")),
        *("--config", "num_eval=1", "resources={'jobs_per_gpu': 2}"),
    ]
    unknown = rerun_args(
        launch_dir=None,
        run_dir=work,
        snakefile=work / "Snakefile",
        configfiles=[],
        config_args=None,
        cores=None,
    )
    assert shlex.split(unknown) == [
        "--snakefile",
        str(work / "Snakefile"),
        "--directory",
        str(work),
    ]


def test_started_in_the_working_directory_the_command_is_the_short_one(tmp_path):
    repo = tmp_path / "repo"
    plain = rerun_args(
        launch_dir=repo,
        run_dir=repo,
        snakefile=repo / "workflow" / "Snakefile",
        configfiles=[repo / "configs" / "mine.yaml"],
        config_args=[],
        cores=2,
    )
    assert plain == "--cores 2 --configfile configs/mine.yaml"
    other = rerun_args(
        launch_dir=repo,
        run_dir=repo,
        snakefile=tmp_path / "ddrank" / "workflow" / "Snakefile",
        configfiles=[],
        config_args=None,
        cores=None,
    )
    assert shlex.split(other) == ["--snakefile", str(tmp_path / "ddrank/workflow/Snakefile")]


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


def test_the_python_api_names_the_snakemake_command_of_its_own_run(tmp_path):
    from ddrank_steps.api.workflow_run import SNAKEFILE, read_score_of_run
    from ddrank_steps.errors import InputError

    score = "results/scores/m/lrs_hard.json"
    (tmp_path / score).parent.mkdir(parents=True)
    (tmp_path / score).write_text('{"method": "m", "metr')
    config = tmp_path / "configs" / "m.lrs_hard.yaml"
    try:
        read_score_of_run(config, tmp_path, score, cores=3)
    except InputError as exc:
        assert exc.path == str(tmp_path / score) and exc.field == "file"
        words = shlex.split(exc.fix.split(": ", 1)[1])
        assert words[:3] == ["snakemake", "--cores", "3"]
        assert words[words.index("--snakefile") + 1] == str(SNAKEFILE)
        assert words[words.index("--directory") + 1] == str(tmp_path)
        assert words[words.index("--configfile") + 1] == str(config)
        assert words[-2:] == ["--forcerun", score]
    else:
        raise AssertionError("a damaged score was read")
