"""Small refusals that must be one clear line, not a traceback: a config file that is not
text, and a read-only folder under results/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import snakemake_command, write_config

from ddrank_steps.api.config import Config
from ddrank_steps.errors import ConfigError
from ddrank_steps.runtime.atomic_write import unwritable_folder, unwritable_reason

REPO = Path(__file__).resolve().parents[1]


def binary_file(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


def test_a_binary_config_file_is_one_line_naming_it(tmp_path):
    path = binary_file(tmp_path / "ref.yaml")
    with pytest.raises(ConfigError, match=r"ref\.yaml: cannot be read as text \(byte \d+ is not"):
        Config.from_file(path)
    cmd = [sys.executable, "-m", "ddrank_steps.api.ddrank_command", "import-config", str(path)]
    cmd += ["--metric", "lrs_hard", "-o", str(tmp_path / "out.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ddrank: error: {path}: cannot be read as text (byte 128 is not UTF-8): a config is "
        "a YAML or JSON text file; check that this is the file you meant"
    ]


def read_only(folder: Path):
    """Make `folder` unwritable even for root (an immutable flag); return the undo."""
    folder.chmod(0o555)
    if unwritable_reason(folder) is not None:
        return lambda: folder.chmod(0o755)
    proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0 or unwritable_reason(folder) is None:
        folder.chmod(0o755)
        pytest.skip(f"cannot make a folder read-only for this user here: {proc.stderr.strip()}")

    def undo():
        subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)

    return undo


def test_a_read_only_subfolder_is_found(tmp_path):
    (tmp_path / "results" / "runs" / "digits").mkdir(parents=True)
    assert unwritable_folder(tmp_path / "results") is None
    undo = read_only(tmp_path / "results" / "runs")
    try:
        folder, why = unwritable_folder(tmp_path / "results")
    finally:
        undo()
    assert folder == tmp_path / "results" / "runs" and why


@pytest.mark.workflow
def test_a_read_only_subfolder_stops_the_run_with_ddranks_message(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    write_config(tmp_path, config)
    (tmp_path / "results" / "datasets").mkdir(parents=True)
    undo = read_only(tmp_path / "results" / "datasets")
    try:
        proc = subprocess.run(
            snakemake_command(tmp_path), capture_output=True, text=True, timeout=300
        )
    finally:
        undo()
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results/datasets/ is not writable" in text and "chmod -R u+w results" in text
    assert "Error in rule" not in text and "Traceback" not in text  # before any job
    assert os.access(tmp_path / "results" / "datasets", os.W_OK)


def ddrank_check(path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ddrank_steps.api.ddrank_command", "check", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_ddrank_check_says_what_is_wrong_with_a_config_in_one_line(tmp_path):
    cases = {
        binary_file(tmp_path / "model.yaml"): "cannot be read as text (byte 128 is not UTF-8)",
        tmp_path / "broken.yaml": "cannot be parsed as YAML: expected ',' or ']'",
        tmp_path / "bare.yaml": "(top level): 'datasets' is a required property",
    }
    (tmp_path / "broken.yaml").write_text("methods: [\n  a")
    (tmp_path / "bare.yaml").write_text("methods: {}\n")
    for path, problem in cases.items():
        proc = ddrank_check(path)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("ddrank: error: ") and str(path) in line and problem in line
    proc = ddrank_check(REPO / "config" / "config.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "config.yaml: ok (methods: random, herding, kmeans)" in proc.stdout


def test_a_config_the_api_writes_is_refused_with_the_schema_line_not_snakemakes(tmp_path):
    """The API and import-config check a config before writing it: the error names the key
    and the closest valid one, as the workflow does, not "Error validating config file"."""
    from ddrank_steps.api.workflow_run import check_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_evall"] = config.pop("num_eval", 5)
    with pytest.raises(ConfigError) as raised:
        check_config(config, "work/configs/kmeans.yaml")
    [line] = str(raised.value).splitlines()
    assert "work/configs/kmeans.yaml" in line and "num_evall" in line and "num_eval" in line


@pytest.mark.workflow
def test_snakemake_with_a_binary_configfile_stops_before_any_job(tmp_path):
    """Snakemake reads `--configfile` itself, before the workflow's code runs, and lets the
    UnicodeDecodeError of a binary file through as a traceback that does not name the file
    (snakemake/common/configfile.py catches only YAML errors): the README points to
    `ddrank check`. If Snakemake ever says it briefly, the README's note can go."""
    path = binary_file(tmp_path / "model.yaml")
    cmd = snakemake_command(tmp_path, configfile=path)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not (tmp_path / "results").exists()
    assert "UnicodeDecodeError" in text
    assert "Traceback" in text, "Snakemake now reports a binary --configfile briefly:\n" + text
    assert ddrank_check(path).stderr.count("\n") == 1  # what the README offers instead
