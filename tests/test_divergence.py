"""A diverged LR is never silent: the train log names it, and a term whose every LR diverged
is marked in its run file, its score file and the leaderboard; the score stays computable."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import accuracy_spec, snakemake_command, tiny_protocol, write_config

from ddrank_steps.stages import leaderboard, score
from ddrank_steps.training import divergence, engine
from ddrank_steps.training.engine import Split

REPO = Path(__file__).resolve().parents[1]
SHAPE = (1, 8, 8)
pytestmark = pytest.mark.usefixtures("one_thread")


def toy_split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, *SHAPE, generator=g), torch.arange(n) % 2)


def test_each_diverged_lr_is_logged_and_recorded(caplog):
    protocol = tiny_protocol("grid", lr_grid=[0.01, 1e12], weight_decay=0.0, epochs=2)
    group = engine.RunGroup(protocol, 0, toy_split(16, 0), toy_split(4, 1), None, SHAPE, 2)
    with caplog.at_level(logging.WARNING, logger="ddrank"):
        results, _ = engine.train_group(group, protocol["lr_grid"], show_progress=False)
    sane, broken = results
    assert sane.diverged_at is None and not sane.to_dict()["diverged"]
    assert broken.diverged_at == 2 and broken.to_dict()["diverged"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("lr 1e+12 diverged") for w in warnings), warnings
    assert not any("every LR diverged" in w for w in warnings)
    caplog.clear()
    protocol["lr_grid"] = [1e12, 1e13]
    with caplog.at_level(logging.WARNING, logger="ddrank"):
        engine.train_group(group, protocol["lr_grid"], show_progress=False)
    assert any("every LR diverged (1e+12, 1e+13)" in r.getMessage() for r in caplog.records)


def run_file(path, acc: float, diverged: bool) -> str:
    loss = None if diverged else 0.5
    curve = [{"epoch": 2, "test": acc, "val": None, "train_loss": loss}]
    runs = [{"lr": lr, "curve": curve, "acc": acc} for lr in (0.01, 0.1)]
    data = {"runs": runs, "selected": {"lr": 0.01, "acc": acc, "epoch": 2}, "data": None}
    path.write_text(json.dumps(data))
    return str(path)


def test_a_term_whose_every_lr_diverged_is_marked_in_score_and_leaderboard(tmp_path, caplog):
    rounds = [
        {
            "seed": seed,
            "terms": {
                "syn-any": run_file(tmp_path / f"syn{seed}.json", 0.1, diverged=seed == 1),
            },
        }
        for seed in (0, 1)
    ]
    spec = accuracy_spec(rounds)
    out = tmp_path / "score.json"
    with caplog.at_level(logging.WARNING, logger="ddrank"):
        score.main(score.parser().parse_args(["--spec", json.dumps(spec), "--out", str(out)]))
    written = json.loads(out.read_text())
    assert [r["terms"]["syn-any"]["diverged"] for r in written["rounds"]] == [False, True]
    assert written["summary"]["diverged_terms"] == ["syn-any"]
    assert written["summary"]["acc"]["mean"] == pytest.approx(0.1)  # still computed
    assert any("every LR of term syn-any diverged" in r.getMessage() for r in caplog.records)
    table = leaderboard.rows([str(out)])
    assert table.loc[0, "accuracy_diverged"] == "syn-any"


def test_a_term_with_one_sane_lr_is_not_marked(tmp_path):
    run = json.loads(open(run_file(tmp_path / "r.json", 0.5, diverged=True)).read())
    run["runs"][0]["curve"][0]["train_loss"] = 0.3
    assert not score.every_lr_diverged(run)
    assert score.every_lr_diverged(json.loads((tmp_path / "r.json").read_text()))


# --- a finite blow-up (training/divergence.py) -------------------------------------------


def curve(losses, tests) -> list[dict]:
    return [
        {"epoch": i + 1, "test": t, "val": None, "train_loss": loss}
        for i, (loss, t) in enumerate(zip(losses, tests, strict=True))
    ]


def test_a_finite_blow_up_is_diverged_with_its_reason():
    """The issue's lr 10000 run: 2.4 -> 5.4e4 -> 4.4e9 at chance, never NaN."""
    blown = curve([2.4, 5.4e4, 4.4e9], [0.1, 0.1, 0.1])
    found = divergence.divergence_of(blown, 10, divergence.LOSS_GROWTH)
    assert found["epoch"] == 2
    assert "grew from 2.4 to 5.4e+04, past 100x its start" in found["reason"]
    assert "divergence.loss_growth" in found["reason"]
    # a looser bound: the accuracy at chance while the loss doubles still flags it
    found = divergence.divergence_of(blown, 10, 1e12)
    assert found["epoch"] == 2 and "stayed at chance (0.100 with 10 classes)" in found["reason"]
    # above chance, only the bound flags it
    above = curve([2.4, 5.4e4, 4.4e9], [0.5, 0.5, 0.5])
    assert divergence.divergence_of(above, 10, 1e6)["epoch"] == 3
    assert divergence.divergence_of(above, 10, 1e12) is None


@pytest.mark.parametrize(
    "losses, tests",
    [
        ([2.3, 1.1, 0.4, 0.1], [0.3, 0.6, 0.8, 0.9]),  # learning
        ([0.9, 1.6, 1.2, 1.7], [0.5, 0.6, 0.6, 0.7]),  # noisy, above chance
        ([2.30, 2.30, 2.31, 2.30], [0.1, 0.11, 0.09, 0.1]),  # too small an LR: stuck
        ([0.01, 0.5, 0.9], [0.9, 0.9, 0.9]),  # a loss up 90x from a tiny start, still sane
    ],
)
def test_a_healthy_or_merely_poor_run_is_not_diverged(losses, tests):
    assert divergence.divergence_of(curve(losses, tests), 10, divergence.LOSS_GROWTH) is None


def test_the_bound_comes_from_the_protocol():
    assert divergence.loss_growth_of({}) == divergence.LOSS_GROWTH
    assert divergence.loss_growth_of({"divergence": None}) == divergence.LOSS_GROWTH
    assert divergence.loss_growth_of({"divergence": {"loss_growth": 20}}) == 20


def test_a_blown_up_lr_is_flagged_in_its_run_file_and_never_selected(caplog):
    protocol = tiny_protocol("grid", lr_grid=[0.01, 1e4], weight_decay=0.0, epochs=3)
    protocol["test_interval"] = 1
    group = engine.RunGroup(protocol, 0, toy_split(16, 0), toy_split(4, 1), None, SHAPE, 2)
    with caplog.at_level(logging.WARNING, logger="ddrank"):
        results, best = engine.train_group(group, protocol["lr_grid"], show_progress=False)
    sane, blown = results
    assert sane.divergence is None and "divergence" not in sane.to_dict()
    assert blown.to_dict()["diverged"] and blown.to_dict()["divergence"]["reason"]
    assert best == 0
    assert any(r.getMessage().startswith("lr 10000 diverged at epoch") for r in caplog.records)


def test_a_flagged_finite_run_is_a_diverged_term_with_its_reason(tmp_path):
    run = json.loads(open(run_file(tmp_path / "r.json", 0.1, diverged=False)).read())
    for lr_run in run["runs"]:
        lr_run["diverged"] = True
        lr_run["divergence"] = {"epoch": 2, "reason": "the train loss grew"}
    (tmp_path / "r.json").write_text(json.dumps(run))
    term = score.read_term(str(tmp_path / "r.json"))
    assert term["diverged"] and term["diverged_reason"] == "lr 0.01: the train loss grew"


@pytest.mark.workflow
def test_a_method_trained_at_lr_10000_is_flagged_on_the_leaderboard(tmp_path):
    """The issue's case end to end: 3 epochs at lr 10000 stay finite and are flagged."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 1
    protocol = config["protocols"]["digits-dsa"]
    protocol.update(lr=10000, lr_grid=None, epochs=3, test_interval=1, step_size=2)
    config["protocols"] = {"digits-dsa": protocol}
    kmeans = config["methods"]["kmeans"]
    config["methods"] = {"kmeans": {**kmeans, "metrics": {"accuracy": {"protocol": "digits-dsa"}}}}
    write_config(tmp_path, config)
    cmd = snakemake_command(tmp_path, "results/leaderboard.csv")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    table = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert table.loc[0, "accuracy_diverged"] == "syn-any"
    run = json.loads(next((tmp_path / "results" / "runs").rglob("seed0.json")).read_text())
    assert run["diverged_lrs"] == [10000] and run["runs"][0]["curve"][-1]["train_loss"] is not None
    assert "past 100x its start" in run["runs"][0]["divergence"]["reason"]
