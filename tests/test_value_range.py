"""A set outside its dataset's normalised space is refused with the fix (the mean and std
named), or, where that is ambiguous, warned about in the log and on the leaderboard."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch
from helpers import accuracy_spec, digits_meta
from sklearn.datasets import load_digits

from ddrank_steps.data import value_range
from ddrank_steps.data.syn_import import import_set
from ddrank_steps.errors import InputError
from ddrank_steps.stages import leaderboard, score

DIGITS = load_digits()
RAW = torch.tensor(DIGITS.images[:200], dtype=torch.float32).unsqueeze(1)  # 0-16, (N,1,8,8)
MEAN = [float((RAW / 16).mean())]
STD = [float((RAW / 16).std())]
META = digits_meta(MEAN, STD)


def normalised() -> torch.Tensor:
    return (RAW / 16 - MEAN[0]) / STD[0]


def test_normalised_sets_and_optimised_ones_pass():
    assert value_range.judge(normalised(), MEAN, STD) is None
    # a distilled set drifts a little outside the pixel range: still fine
    g = torch.Generator().manual_seed(0)
    drifted = normalised() * 1.3 + 0.3 * torch.randn(RAW.shape, generator=g)
    assert value_range.judge(drifted, MEAN, STD) is None


@pytest.mark.parametrize(
    "values, expected",
    [
        (RAW, "all whole numbers: raw pixels"),  # digits' raw 0-16 as float32
        ((RAW * 16).clamp(max=255), "all whole numbers: raw pixels"),  # as 0-255
        (RAW + torch.rand(RAW.shape, generator=torch.Generator().manual_seed(1)), "beyond"),
        (normalised() * 300, "pixel ranges beyond what the dataset's normalisation gives"),
    ],
)
def test_sets_far_outside_are_an_error_with_the_mean_and_std(values, expected):
    kind, what, fix = value_range.judge(values, MEAN, STD)
    assert kind == "error" and expected in what
    assert f"mean [{MEAN[0]:.4g}]" in fix and f"std [{STD[0]:.4g}]" in fix


def test_ambiguous_sets_are_a_warning():
    kind, what, _ = value_range.judge(RAW / 16, MEAN, STD)  # [0, 1], never normalised
    assert kind == "warning" and "never normalised" in what
    kind, what, _ = value_range.judge(normalised() * 4, MEAN, STD)
    assert kind == "warning" and "is it normalised" in what


def test_import_refuses_raw_pixels_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "raw.pt"
    torch.save(RAW[:20], path)
    pattern = rf"^{re.escape(str(path))}: field 'images': values span \[0, 16\].*Fix: .*mean"
    with pytest.raises(InputError, match=pattern):
        import_set("m", str(path), None, None, 2, META)


def test_an_ambiguous_set_is_logged_and_reaches_the_leaderboard(tmp_path, caplog):
    path = tmp_path / "unnormalised.pt"
    torch.save(RAW[:20] / 16, path)
    with caplog.at_level(logging.WARNING, logger="ddrank"):
        blob = import_set("m", str(path), None, None, 2, META)
    assert "never normalised" in blob["info"]["value_range"]
    assert any("never normalised" in r.getMessage() for r in caplog.records)
    run = {
        "set_info": blob["info"],
        "runs": [{"lr": 0.01, "curve": [{"epoch": 1, "test": 0.5, "train_loss": 1.0}]}],
        "selected": {"lr": 0.01, "acc": 0.5, "epoch": 1},
        "data": None,
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    spec = accuracy_spec(
        [{"seed": 0, "terms": {"syn-any": str(tmp_path / "run.json")}}], dataset="digits", ipc=2
    )
    out = tmp_path / "score.json"
    score.main(score.parser().parse_args(["--spec", json.dumps(spec), "--out", str(out)]))
    assert "never normalised" in json.loads(out.read_text())["summary"]["set_warnings"][0]
    notes = leaderboard.rows([str(out)]).loc[0, "notes"]
    assert notes.startswith("accuracy: set syn-any: values span") and "never normalised" in notes


def test_a_normalised_set_gets_no_note(tmp_path):
    path = tmp_path / "fine.pt"
    torch.save(normalised()[:20].clone(), path)
    assert "value_range" not in import_set("m", str(path), None, None, 2, META)["info"]
    assert np.isfinite(STD[0])
