"""The training engine on a tiny 2-class problem, its selection rules, and the optimizers
and schedules of a protocol."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_config, tiny_protocol, toy_split

from ddrank_steps.errors import ConfigError
from ddrank_steps.training import engine, run_steps
from ddrank_steps.training.engine import RunResult, eval_epochs, select_lr
from ddrank_steps.training.evaluation import select_point
from ddrank_steps.training.optimisers import make_optimizer, make_scheduler

SHAPE = (1, 8, 8)


def protocol(**changes) -> dict:
    return tiny_protocol("grid", **changes)


pytestmark = pytest.mark.usefixtures("one_thread")


TRAIN = toy_split(20, seed=0)
TEST = toy_split(4, seed=1)


def group(p: dict, seed: int = 0):
    runs = engine.RunGroup(p, seed, TRAIN, TEST, None, SHAPE, num_classes=2)
    return engine.train_group(runs, p["lr_grid"], show_progress=False)


def curves(results: list[RunResult]) -> list[list[dict]]:
    return [r.curve for r in results]


# --- evaluation epochs and selection ---------------------------------------------------------


def test_eval_epochs_adds_the_final_epoch():
    assert eval_epochs(25, 10) == {10, 20, 25}


def test_eval_epochs_when_epochs_is_a_multiple_of_the_interval():
    assert eval_epochs(20, 10) == {10, 20}


def test_eval_epochs_with_interval_longer_than_training_is_the_final_epoch():
    assert eval_epochs(5, 10) == {5}


def result(acc: float, val: float | None = None) -> RunResult:
    return RunResult(lr=0.0, acc=acc, val_acc=val)


def test_select_lr_picks_the_highest_accuracy():
    assert select_lr([result(0.5), result(0.7), result(0.6)], "best") == 1


def test_select_lr_tie_goes_to_the_earlier_lr():
    assert select_lr([result(0.5), result(0.7), result(0.7)], "best") == 1


def test_select_lr_with_val_rule_uses_val_accuracy_not_test():
    results = [result(0.9, val=0.5), result(0.6, val=0.8)]
    assert select_lr(results, "val") == 1


CURVE = [
    {"epoch": 10, "test": 0.60, "val": 0.70},
    {"epoch": 20, "test": 0.80, "val": 0.65},
    {"epoch": 30, "test": 0.80, "val": 0.70},
    {"epoch": 35, "test": 0.75, "val": 0.60},
]


def test_select_best_takes_the_highest_test_accuracy_earliest_on_ties():
    # epochs 20 and 30 tie on test 0.80: the earlier one wins
    assert select_point(CURVE, "best")["epoch"] == 20


def test_select_final_takes_the_last_evaluated_epoch():
    assert select_point(CURVE, "final")["epoch"] == 35


def test_select_val_takes_the_highest_val_accuracy_earliest_on_ties():
    # epochs 10 and 30 tie on val 0.70: epoch 10 wins, and its test accuracy is reported
    point = select_point(CURVE, "val")
    assert (point["epoch"], point["test"]) == (10, 0.60)


# --- training --------------------------------------------------------------------------------


def test_train_group_evaluates_the_interval_epochs_and_the_final_one():
    results, _ = group(protocol())
    assert [p["epoch"] for p in results[0].curve] == [2, 3]


def test_train_group_reports_the_accuracy_of_the_selected_point():
    results, best = group(protocol())
    for r in results:
        point = next(p for p in r.curve if p["epoch"] == r.selected_epoch)
        assert r.acc == point["test"]
    assert best == select_lr(results, "best")


def test_same_seed_gives_identical_curves():
    p = protocol(augmentation="dsa", aug_params={"mode": "M"})
    first, _ = group(p, seed=3)
    second, _ = group(p, seed=3)
    assert curves(first) == curves(second)


def test_different_seed_gives_different_curves():
    first, _ = group(protocol(), seed=3)
    second, _ = group(protocol(), seed=4)
    assert curves(first) != curves(second)


def test_lrs_of_one_group_start_from_identical_initial_weights(monkeypatch):
    initial = []
    build = run_steps.build_model

    def recording_build(*args, **kwargs):
        model = build(*args, **kwargs)
        initial.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(run_steps, "build_model", recording_build)
    group(protocol(epochs=1))
    assert len(initial) == 2
    assert all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0])


def test_select_val_without_val_split_raises():
    with pytest.raises(ValueError, match="select: val needs a validation split"):
        group(protocol(select="val"))


# --- optimizers and schedules ----------------------------------------------------------------


def optimizer_for(**changes):
    p = tiny_config(**changes)
    return p, make_optimizer(p, [torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def lr_after(p: dict, optimizer, epochs: int) -> float:
    scheduler = make_scheduler(p, optimizer)
    for _ in range(epochs):
        optimizer.step()  # a no-op without gradients; keeps the step order torch expects
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


def test_quarter_cosine_factor_is_one_at_the_start():
    p, opt = optimizer_for(scheduler="cosine", epochs=4)
    assert lr_after(p, opt, 0) == pytest.approx(1.0)


def test_quarter_cosine_factor_is_one_half_at_the_last_epoch():
    # 0.5·(1 + cos(π·4/(2·4))) = 0.5·(1 + cos(π/2)) = 0.5
    p, opt = optimizer_for(scheduler="cosine", epochs=4)
    assert lr_after(p, opt, 4) == pytest.approx(0.5)


def test_quarter_cosine_factor_half_way():
    # 0.5·(1 + cos(π·2/8)) = 0.5·(1 + 0.707107) = 0.853553
    p, opt = optimizer_for(scheduler="cosine", epochs=4)
    assert lr_after(p, opt, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_step_scheduler_decays_by_gamma_every_step_size_epochs():
    p, opt = optimizer_for(scheduler="step", step_size=2, gamma=0.1, epochs=6)
    assert lr_after(p, opt, 1) == pytest.approx(1.0)
    p, opt = optimizer_for(scheduler="step", step_size=2, gamma=0.1, epochs=6)
    assert lr_after(p, opt, 2) == pytest.approx(0.1)
    p, opt = optimizer_for(scheduler="step", step_size=2, gamma=0.1, epochs=6)
    assert lr_after(p, opt, 4) == pytest.approx(0.01)


def test_step_scheduler_without_step_size_raises():
    p, opt = optimizer_for(scheduler="step", step_size=None)
    with pytest.raises(ConfigError, match="step_size"):
        make_scheduler(p, opt)


def test_none_scheduler_keeps_the_lr():
    p, opt = optimizer_for(scheduler="none")
    assert lr_after(p, opt, 3) == pytest.approx(1.0)


def test_sgd_uses_momentum_and_weight_decay():
    _, opt = optimizer_for(optimizer="sgd", momentum=0.8, weight_decay=0.01)
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.defaults["momentum"], opt.defaults["weight_decay"]) == (0.8, 0.01)


def test_adam_with_momentum_pair_uses_it_as_betas():
    _, opt = optimizer_for(optimizer="adam", momentum=[0.5, 0.9])
    assert type(opt) is torch.optim.Adam
    assert opt.defaults["betas"] == (0.5, 0.9)


def test_adamw_with_scalar_momentum_keeps_default_betas():
    _, opt = optimizer_for(optimizer="adamw", momentum=0.9)
    assert type(opt) is torch.optim.AdamW
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_unknown_optimizer_raises_config_error_listing_the_valid_ones():
    with pytest.raises(ConfigError, match=r"optimizer 'rmsprop' is unknown.*'sgd', 'adam'"):
        optimizer_for(optimizer="rmsprop")


def test_unknown_scheduler_raises_config_error_listing_the_valid_ones():
    p, opt = optimizer_for(scheduler="linear")
    with pytest.raises(ConfigError, match=r"scheduler 'linear' is unknown.*'cosine'"):
        make_scheduler(p, opt)
