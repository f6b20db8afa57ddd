"""The metric registry is the one home of a metric: the schema, the `metric` wildcard,
the planner, the score stage and the leaderboard all read it. A toy metric registered
here (one module's worth of code, plus its schema block) is planned, scored and ranked
with no edit anywhere else."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from ddrank_steps import formulas, metric_registry, paths
from ddrank_steps.metric_registry import Metric
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.stages import leaderboard, score

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


# --- the toy metric: what a new module of ddrank_steps/metric_registry/ would hold ---------


def toy_terms(plan, request) -> dict:
    """IOR alone: the syn and rdm arms of the protocol, as LRS-hard trains them."""
    return {
        "syn-any": plan.arm(request, request.protocol, "syn"),
        "rdm-any": plan.arm(request, request.protocol, "rdm"),
    }


def toy_compute(acc: dict, settings: dict) -> dict:
    gap = formulas.ior(acc["syn-any"], acc["rdm-any"])
    return {"gap": gap, "scaled": settings["scale"] * gap}


TOY = Metric(
    name="toy_gap",
    plan_terms=toy_terms,
    compute=toy_compute,
    quantities=("scaled", "gap"),
    lr_term="syn-any",
    settings=("scale",),
    rank=50,
)
TOY_SCHEMA_BLOCK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["protocol"],
    "properties": {
        "protocol": {"type": "string"},
        "scale": {"type": "number", "default": 100},
        "lr_rule": {"type": "string", "enum": ["reference", "grid_all"], "default": "reference"},
    },
}


@pytest.fixture
def toy():
    metric_registry.register(TOY)
    yield TOY
    metric_registry.unregister(TOY.name)


@pytest.fixture
def toy_config(toy, tmp_path) -> dict:
    """The default config with toy_gap asked for every method, validated by the schema
    with the toy's block added."""
    schema = copy.deepcopy(SCHEMA)
    schema["$defs"]["toy_gap"] = TOY_SCHEMA_BLOCK
    schema["$defs"]["method"]["properties"]["metrics"]["properties"]["toy_gap"] = {
        "$ref": "#/$defs/toy_gap"
    }
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["num_eval"] = 2
    for method in ("random", "herding", "kmeans"):
        config["methods"][method]["metrics"] = {
            "lrs_hard": {"protocol": "digits-dsa"},
            "toy_gap": {"protocol": "digits-dsa"},
        }
    schema_file = tmp_path / "config.schema.yaml"
    schema_file.write_text(yaml.safe_dump(schema))
    validate(config, str(schema_file))
    return config


# --- the built-in metrics ---------------------------------------------------------------------


def test_builtin_metrics_in_leaderboard_order():
    assert metric_registry.names() == ["lrs_hard", "lrs_soft", "ars", "accuracy"]
    assert [m.headline for m in metric_registry.METRICS.values()] == ["lrs", "lrs", "ars", "acc"]


def test_schema_has_one_block_per_registered_metric():
    listed = SCHEMA["$defs"]["method"]["properties"]["metrics"]["properties"]
    assert list(listed) == metric_registry.names()
    for name in listed:
        block = SCHEMA["$defs"][name]
        assert block["required"] == ["protocol"]
        assert set(metric_registry.get(name).settings) <= set(block["properties"])


def test_the_metric_wildcard_matches_exactly_the_registered_names(toy):
    pattern = re.compile(f"^(?:{metric_registry.wildcard_pattern()})$")
    for name in metric_registry.names():
        assert pattern.match(name)
    assert "toy_gap" in metric_registry.names()
    assert not pattern.match("lrs_hardly") and not pattern.match("ars2")


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(KeyError, match="lrs_hard"):
        metric_registry.get("lrs_medium")


# --- a toy metric, end to end without the workflow ------------------------------------------


def test_a_registered_toy_metric_is_planned_sharing_the_runs_of_lrs_hard(toy_config):
    plan = build_plan(toy_config)
    toy_spec = plan.scores[("kmeans", "toy_gap")]
    lrs_spec = plan.scores[("kmeans", "lrs_hard")]
    assert toy_spec["metric"] == "toy_gap" and toy_spec["settings"]["scale"] == 100
    for toy_round, lrs_round in zip(toy_spec["rounds"], lrs_spec["rounds"], strict=True):
        assert toy_round["terms"] == {
            term: lrs_round["terms"][term] for term in ("syn-any", "rdm-any")
        }
    assert paths.SCORE.format(method="kmeans", metric="toy_gap") in plan.score_targets()


def fake_run(path: Path, acc: float, lr: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"selected": {"acc": acc, "lr": lr, "epoch": 4}, "data": {}}))


def test_a_registered_toy_metric_is_scored_and_ranked(toy_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = build_plan(toy_config)
    accuracies = {"random": 0.60, "herding": 0.70, "kmeans": 0.65}
    score_files = []
    for method, syn_acc in accuracies.items():
        spec = plan.scores[(method, "toy_gap")]
        for i, r in enumerate(spec["rounds"]):
            fake_run(Path(r["terms"]["syn-any"]), syn_acc + 0.01 * i, 0.01)
            fake_run(Path(r["terms"]["rdm-any"]), 0.50, 0.05)
        result = score.score(spec)
        assert result["summary"]["gap"]["mean"] == pytest.approx(syn_acc + 0.005 - 0.50)
        assert result["summary"]["scaled"]["mean"] == pytest.approx(100 * (syn_acc - 0.495))
        out = tmp_path / f"{method}.json"
        args = score.parser().parse_args(["--spec", json.dumps(spec), "--out", str(out)])
        score.main(args)
        score_files.append(str(out))
    table = leaderboard.rows(score_files)
    # toy_gap is the only metric computed here: its headline ranks the methods
    assert list(table["method"]) == ["herding", "kmeans", "random"]
    assert "toy_gap_scaled_mean" in table and "toy_gap_gap_std" in table
    assert list(table["toy_gap_scale"]) == [100, 100, 100]
