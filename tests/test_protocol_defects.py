"""Planning decisions where we used to give numbers the reference (or a careful user)
would not: the real-hard run's selection and test interval, the teacher's initial weights,
the process count in the real-hard key, and the transforms of LRS-soft's syn-hard term.
(Own soft labels in every documented place: tests/test_soft_labels.py.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_protocol
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.training import engine, run_steps

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="module")
def validated() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, SCHEMA)
    return config


@pytest.fixture
def config(validated) -> dict:
    return copy.deepcopy(validated)


def protocols(plan, metric: str, method: str = "kmeans") -> dict:
    return plan.scores[(method, metric)]["protocols"]


def without_interval(config: dict) -> dict:
    """The demo with no test_interval anywhere, so every default applies."""
    for p in (*config["protocols"].values(), *config["real_protocols"].values()):
        p["test_interval"] = None
    return config


# --- 2. real-hard follows the metric's select --------------------------------------------------


@pytest.mark.parametrize("select", ["best", "final"])
def test_real_hard_is_selected_like_the_syn_terms(config, select):
    for p in config["protocols"].values():
        p["select"] = select
    plan = build_plan(config)
    for metric in ("lrs_hard", "lrs_soft"):
        terms = protocols(plan, metric)
        assert terms["real-hard"]["select"] == select == terms["syn-hard"]["select"]


def test_teachers_trained_as_real_hard_runs_follow_the_students_select(config):
    config["protocols"]["digits-kd"]["select"] = "final"
    plan = build_plan(config)
    teacher_key = protocols(plan, "lrs_soft")["syn-any"]["teachers"][0]["key"]
    assert plan.protocols[teacher_key]["select"] == "final"


def test_real_hard_with_select_val_is_chosen_on_the_val_split(config):
    config["datasets"]["digits"]["val_fraction"] = 0.1
    config["protocols"]["digits-dsa"]["select"] = "val"
    assert protocols(build_plan(config), "lrs_hard")["real-hard"]["select"] == "val"


def test_a_real_protocol_with_another_select_is_refused(config):
    config["real_protocols"]["digits-ConvNet-3"]["select"] = "final"
    with pytest.raises(ConfigError, match=r"real_protocols.digits-ConvNet-3.select: .*'best'"):
        build_plan(config)


# --- 4. the test interval follows the metric, as the reference -------------------------------


def test_default_test_interval_is_the_references_per_metric(config):
    plan = build_plan(without_interval(config))
    expected = {"lrs_hard": 10, "accuracy": 10, "lrs_soft": 20, "ars": 20}
    for metric, interval in expected.items():
        for term, p in protocols(plan, metric).items():
            assert p["test_interval"] == interval, (metric, term)


def test_an_explicit_test_interval_wins(config):
    config = without_interval(config)
    config["protocols"]["digits-kd"]["test_interval"] = 5
    config["real_protocols"]["digits-ConvNet-3"]["test_interval"] = 7
    plan = build_plan(config)
    soft = protocols(plan, "lrs_soft")
    assert soft["syn-any"]["test_interval"] == 5 and soft["real-hard"]["test_interval"] == 7


# --- 3. a teacher never shares its students' initial weights ---------------------------------


def initial_weights(real: bool) -> list[torch.Tensor]:
    p = tiny_protocol("fixed", lr=0.1)
    split = engine.Split(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
    group = engine.RunGroup(p, 3, split, split, None, (1, 8, 8), num_classes=2, real=real)
    return [t.clone() for t in run_steps.start_run(group, 0.1).model.state_dict().values()]


def test_real_hard_runs_draw_other_initial_weights_than_the_students():
    student, teacher = initial_weights(real=False), initial_weights(real=True)
    assert not all(torch.equal(a, b) for a, b in zip(student, teacher, strict=True))
    # and each stream is still reproducible
    assert all(torch.equal(a, b) for a, b in zip(teacher, initial_weights(True), strict=True))


# --- 5. the process count is part of the real-hard key ---------------------------------------


def test_real_processes_change_the_real_hard_key_only(config):
    one = build_plan(config)
    config["resources"]["real_processes"] = 2
    config["real_protocols"]["digits-ConvNet-3"]["batch_size"] = 128  # divisible by 2
    two = build_plan(config)
    a, b = protocols(one, "lrs_hard"), protocols(two, "lrs_hard")
    assert a["real-hard"]["key"] != b["real-hard"]["key"]
    assert (a["real-hard"]["processes"], b["real-hard"]["processes"]) == (1, 2)
    assert a["syn-hard"]["key"] == b["syn-hard"]["key"] and "processes" not in a["syn-hard"]


# --- 6. LRS-soft's syn-hard keeps the train transforms ---------------------------------------
# (tests/test_batch_transforms.py: test_syn_hard_without_use_aug_for_hard_keeps_the_train_list)
