"""Schema errors come as one line first: the config file, the key path, what is wrong and
the closest valid key; then the detail."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ddrank_steps.planning.schema import schema_problem

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
FILES = ["my-config.yaml"]


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def first_line(config: dict) -> str:
    problem = schema_problem(config, SCHEMA, FILES)
    assert problem is not None
    return problem.splitlines()[0]


def test_a_valid_config_has_no_problem(config):
    assert schema_problem(config, SCHEMA, FILES) is None


def test_a_misspelt_protocol_key_names_file_path_and_the_closest_key(config):
    protocol = config["protocols"]["digits-dsa"]
    protocol["lr_gird"] = protocol.pop("lr_grid")
    assert first_line(config) == (
        "config error in config file my-config.yaml: protocols.digits-dsa.lr_gird: "
        "unknown key; did you mean lr_grid?"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c.update(num_evals=c.pop("num_eval")),
            "num_evals: unknown key; did you mean num_eval?",
        ),
        (
            lambda c: c["methods"]["kmeans"].update(
                metrics={"lrs_hrd": {"protocol": "digits-dsa"}}
            ),
            "methods.kmeans.metrics.lrs_hrd: unknown key; did you mean lrs_hard?",
        ),
        (
            lambda c: c["protocols"]["digits-dsa"].update(select="bestt"),
            "protocols.digits-dsa.select: 'bestt' is not one of",
        ),
        (
            lambda c: c["protocols"]["digits-dsa"].update(epochs="ten"),
            "protocols.digits-dsa.epochs: 'ten' is not of type 'integer'",
        ),
        (
            lambda c: c.setdefault("resources", {}).update(jobs_per_gpu=0),
            "resources.jobs_per_gpu: 0 is less than the minimum of 1; set 1 or more",
        ),
    ],
)
def test_other_mistakes_put_the_key_path_first(config, change, expected):
    config = copy.deepcopy(config)
    change(config)
    assert expected in first_line(config)


@pytest.mark.workflow
def test_the_workflow_reports_a_schema_error_in_a_few_lines(config, tmp_path):
    protocol = config["protocols"]["digits-dsa"]
    protocol["lr_gird"] = protocol.pop("lr_grid")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")),
        *("--directory", str(tmp_path), "--configfile", str(path), "--dry-run"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = text.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("config error"))
    assert lines[error] == (
        f"config error in config file {path}: protocols.digits-dsa.lr_gird: unknown key; "
        "did you mean lr_grid?"
    )
    assert len(lines) < 15, text  # not the whole schema
