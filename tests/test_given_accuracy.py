"""`eval_full_data: false`: the real-hard term is a known accuracy (the reference's table,
or the config's `real_accuracies`), given, not trained, and said so in the score file and
on the leaderboard."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import lrs_hard_score
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.reference_tables import reference_real_accuracies
from ddrank_steps.stages import leaderboard, score

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, SCHEMA)
    for method in config["methods"].values():
        method["metrics"]["lrs_hard"]["eval_full_data"] = False
    return copy.deepcopy(config)


def test_the_references_two_known_accuracies_are_built_in():
    table = reference_real_accuracies()
    assert table["ImageNet1K-ResNet-18-BN"]["accuracy"] == pytest.approx(0.565)
    assert table["TinyImageNet-ResNet-18-BN"]["accuracy"] == pytest.approx(0.464)


def test_a_missing_known_accuracy_names_the_key_to_add(config):
    with pytest.raises(
        ConfigError, match=r"eval_full_data is false.*real_accuracies: \{digits-ConvNet-3"
    ):
        build_plan(config)


def test_a_known_accuracy_replaces_the_real_hard_training(config):
    config["real_accuracies"] = {"digits-ConvNet-3": {"accuracy": 0.97, "source": "my paper"}}
    plan = build_plan(config)
    spec = plan.scores[("kmeans", "lrs_hard")]
    real = spec["protocols"]["real-hard"]
    assert real["given_accuracy"] == 0.97 and real["source"] == "my paper"
    paths = [r["terms"]["real-hard"] for r in spec["rounds"]]
    assert all("/real-given/" in p for p in paths)
    # lrs_soft still trains its real-hard term (its own eval_full_data is true)
    soft = plan.scores[("kmeans", "lrs_soft")]["rounds"][0]["terms"]["real-hard"]
    assert "/real/" in soft


def test_the_stage_writes_a_run_file_the_score_reads_as_given(tmp_path):
    protocol = {"given_accuracy": 0.565, "source": "table", "entry": "x", "model": "m"}
    out = tmp_path / "seed0.json"
    cmd = [sys.executable, "-m", "ddrank_steps.stages.given_accuracy"]
    cmd += ["--protocol", json.dumps(protocol), "--protocol-key", "0123456789"]
    cmd += ["--seed", "0", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    term = score.read_term(str(out))
    assert term["acc"] == 0.565 and term["given"] == "table" and term["lr"] is None


def test_the_leaderboard_says_which_term_was_given(tmp_path):
    def term(acc, given=None):
        t = {"acc": acc, "lr": 0.1, "epoch": 1, "run": "r"}
        return {**t, "given": given} if given else t

    terms = {
        "real-hard": term(0.9, "table"),
        "syn-hard": term(0.5),
        "syn-any": term(0.5),
        "rdm-any": term(0.4),
    }
    s = lrs_hard_score(terms)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(s))
    table = leaderboard.rows([str(path)])
    assert table.loc[0, "lrs_hard_given"] == "table"


@pytest.mark.workflow
def test_a_known_accuracy_dry_runs_with_no_curve_asked_of_it(config, tmp_path):
    """A given term trains nothing, so the report asks no LR-curve figure of it (one it
    asked for had no rule to make it: `snakemake -n` failed on the reference's ImageNet
    configs, whose eval_full_data is false)."""
    from helpers import dry_run, job_counts

    config["real_accuracies"] = {"digits-ConvNet-3": {"accuracy": 0.97, "source": "my paper"}}
    text = dry_run(tmp_path, config)
    assert job_counts(text)["given_accuracy"] == 3
    assert "figures/runs/digits/real-given/" not in text
