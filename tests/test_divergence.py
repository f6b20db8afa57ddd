"""A diverged LR is never silent: the train log names it, and a term whose every LR diverged
is marked in its run file, its score file and the leaderboard; the score stays computable."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers import tiny_protocol

from ddrank_steps.stages import leaderboard, score
from ddrank_steps.training import engine
from ddrank_steps.training.engine import Split

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
    spec = {
        "method": "m",
        "metric": "accuracy",
        "dataset": "d",
        "ipc": 1,
        "settings": {"protocol": "p"},
        "protocol_name": "p",
        "protocols": {"syn-any": {"select": "best"}},
        "rounds": rounds,
    }
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
