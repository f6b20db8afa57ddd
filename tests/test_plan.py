"""The plan: from the validated config to runs, their shared cache keys and config errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import tiny_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.keys import protocol_key, run_protocol

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
METHODS = ("random", "herding", "kmeans")


def raw_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def validated() -> dict:
    config = raw_config()
    validate(config, SCHEMA)  # fills the schema's defaults in place
    return config


@pytest.fixture
def config(validated) -> dict:
    return copy.deepcopy(validated)


def terms(plan, method: str, term: str) -> list[str]:
    return [r["terms"][term] for r in plan.scores[(method, "lrs_hard")]["rounds"]]


# --- the shape of the plan -------------------------------------------------------------------


def test_plan_has_one_score_per_method_and_metric(config):
    plan = build_plan(config)
    metrics = ("lrs_hard", "lrs_soft", "ars", "accuracy")
    assert sorted(plan.scores) == sorted((m, k) for m in METHODS for k in metrics)


def test_each_score_has_num_eval_rounds_with_consecutive_seeds(config):
    plan = build_plan(config)
    for method in METHODS:
        rounds = plan.scores[(method, "lrs_hard")]["rounds"]
        assert [r["seed"] for r in rounds] == [0, 1, 2]  # seed 0, num_eval 3


def test_rdm_runs_are_shared_by_every_method(config):
    plan = build_plan(config)
    assert terms(plan, "random", "rdm-any") == terms(plan, "herding", "rdm-any")
    assert terms(plan, "random", "rdm-any") == terms(plan, "kmeans", "rdm-any")


def test_real_hard_runs_are_shared_by_every_method(config):
    plan = build_plan(config)
    assert terms(plan, "random", "real-hard") == terms(plan, "herding", "real-hard")
    assert terms(plan, "random", "real-hard") == terms(plan, "kmeans", "real-hard")


def test_syn_runs_differ_per_method(config):
    plan = build_plan(config)
    paths = {p for m in METHODS for p in terms(plan, m, "syn-hard")}
    assert len(paths) == 3 * 3


def test_syn_any_of_lrs_hard_is_the_syn_hard_run(config):
    plan = build_plan(config)
    assert terms(plan, "kmeans", "syn-any") == terms(plan, "kmeans", "syn-hard")


def test_run_paths_hold_dataset_set_key_and_seed(config):
    plan = build_plan(config)
    spec = plan.scores[("random", "lrs_hard")]
    key = spec["protocols"]["rdm-any"]["key"]
    expected = f"results/runs/digits/rdm-ipc10/{key}/seed1.json"
    assert spec["rounds"][1]["terms"]["rdm-any"] == expected


def test_real_run_uses_the_configured_real_protocol(config):
    real = build_plan(config).scores[("random", "lrs_hard")]["protocols"]["real-hard"]
    assert (real["lr_source"], real["lr"], real["epochs"]) == ("fixed", 0.05, 60)
    assert real["model"] == "ConvNet-3"
    assert real["model_options"] == {"width": 32, "activation": "relu", "pooling": "avgpooling"}
    assert real["labels"] == "hard"


def test_score_inputs_lists_each_round_term_once(config):
    plan = build_plan(config)
    # 3 rounds × (syn, rdm, real); syn-any is the syn-hard file
    assert len(plan.score_inputs("random", "lrs_hard")) == 9


# --- cache keys ------------------------------------------------------------------------------


def test_protocol_key_ignores_dict_key_order(config):
    p = run_protocol(config["protocols"]["digits-dsa"], "grid")
    reordered = dict(reversed(list(p.items())))
    reordered["aug_params"] = dict(reversed(list(p["aug_params"].items())))
    assert protocol_key(reordered) == protocol_key(p)


def test_protocol_key_changes_when_epochs_change(config):
    protocol = config["protocols"]["digits-dsa"]
    longer = {**protocol, "epochs": protocol["epochs"] + 1}
    base_key = protocol_key(run_protocol(protocol, "grid"))
    assert protocol_key(run_protocol(longer, "grid")) != base_key


def test_renaming_a_protocol_keeps_every_run_path(config):
    renamed = copy.deepcopy(config)
    renamed["protocols"]["other-name"] = renamed["protocols"].pop("digits-dsa")
    for method in renamed["methods"].values():
        method["metrics"]["lrs_hard"]["protocol"] = "other-name"
    a, b = build_plan(config), build_plan(renamed)
    for method in METHODS:
        assert a.score_inputs(method, "lrs_hard") == b.score_inputs(method, "lrs_hard")


def test_changing_the_metric_weight_keeps_every_run_path(config):
    changed = copy.deepcopy(config)
    changed["methods"]["random"]["metrics"]["lrs_hard"]["weight"] = 0.9
    a, b = build_plan(config), build_plan(changed)
    assert a.score_inputs("random", "lrs_hard") == b.score_inputs("random", "lrs_hard")


def test_editing_the_metric_protocol_keeps_the_real_hard_runs(config):
    changed = copy.deepcopy(config)
    changed["protocols"]["digits-dsa"]["epochs"] = 10
    a, b = build_plan(config), build_plan(changed)
    assert terms(a, "random", "real-hard") == terms(b, "random", "real-hard")
    assert terms(a, "random", "rdm-any") != terms(b, "random", "rdm-any")


# --- where the LR comes from -----------------------------------------------------------------


def test_method_lr_with_reference_rule_makes_syn_use_the_sets_lr(config):
    config["methods"]["random"]["lr"] = 0.02
    spec = build_plan(config).scores[("random", "lrs_hard")]["protocols"]
    assert spec["syn-any"]["lr_source"] == "set"
    assert "lr_grid" not in spec["syn-any"] and "lr" not in spec["syn-any"]
    assert spec["rdm-any"]["lr_source"] == "grid"
    assert spec["rdm-any"]["lr_grid"] == [0.001, 0.005, 0.01, 0.05, 0.1]


def test_method_lr_with_grid_all_rule_makes_syn_search_the_grid(config):
    config["methods"]["random"]["lr"] = 0.02
    config["methods"]["random"]["metrics"]["lrs_hard"]["lr_rule"] = "grid_all"
    spec = build_plan(config).scores[("random", "lrs_hard")]["protocols"]
    assert spec["syn-any"]["lr_source"] == "grid"
    assert spec["syn-any"]["key"] == spec["rdm-any"]["key"]


def test_protocol_with_fixed_lr_fixes_both_syn_and_rdm(config):
    config["protocols"]["digits-dsa"]["lr"] = 0.03
    config["methods"]["random"]["lr"] = 0.02  # ignored: the protocol fixes the LR
    spec = build_plan(config).scores[("random", "lrs_hard")]["protocols"]
    assert (spec["syn-any"]["lr_source"], spec["syn-any"]["lr"]) == ("fixed", 0.03)
    assert (spec["rdm-any"]["lr_source"], spec["rdm-any"]["lr"]) == ("fixed", 0.03)


def test_run_protocol_step_scheduler_without_step_size_decays_half_way():
    protocol = tiny_config(scheduler="step", step_size=None, gamma=0.1, epochs=30, lr=0.1)
    assert run_protocol(protocol, "fixed")["step_size"] == 15


def test_run_protocol_drops_step_settings_for_other_schedulers():
    protocol = tiny_config(scheduler="cosine", step_size=5, gamma=0.1, lr=0.1)
    run = run_protocol(protocol, "fixed")
    assert run["step_size"] is None and run["gamma"] is None


# --- config errors ---------------------------------------------------------------------------


def test_unknown_protocol_name_names_the_metric_path(config):
    config["methods"]["random"]["metrics"]["lrs_hard"]["protocol"] = "nope"
    with pytest.raises(ConfigError, match=r"methods\.random\.metrics\.lrs_hard\.protocol 'nope'"):
        build_plan(config)


def test_unknown_dataset_names_the_method_path(config):
    config["methods"]["herding"]["dataset"] = "cifar"
    with pytest.raises(ConfigError, match=r"methods\.herding\.dataset 'cifar' is not defined"):
        build_plan(config)


def test_unknown_reference_kind_names_the_method_path_and_the_kinds(config):
    config["methods"]["kmeans"]["images"] = "reference:medoids"
    with pytest.raises(
        ConfigError, match=r"methods\.kmeans\.images 'reference:medoids'.*'random', 'herding'"
    ):
        build_plan(config)


def test_unknown_model_name_names_the_protocol(config):
    config["protocols"]["digits-dsa"]["model"] = "ResNt-18"
    config["real_protocols"]["digits-ResNt-18"] = config["real_protocols"]["digits-ConvNet-3"]
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: unknown model 'ResNt-18'"):
        build_plan(config)


def test_unknown_model_is_reported_before_its_missing_real_protocol(config):
    # no real_protocols entry for digits-ResNt-18 either: the typo is the error to report
    config["protocols"]["digits-dsa"]["model"] = "ResNt-18"
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: unknown model 'ResNt-18'"):
        build_plan(config)


def test_unknown_norm_suffix_names_the_protocol(config):
    config["protocols"]["digits-dsa"]["model"] = "ConvNet-3-XX"
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: .*norm suffix 'XX'"):
        build_plan(config)


def test_bad_aug_param_key_names_the_protocol_and_the_key(config):
    config["protocols"]["digits-dsa"]["aug_params"]["bogus"] = 1.0
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: DSA param 'bogus' is unknown"):
        build_plan(config)


def test_bad_model_option_names_the_protocol(config):
    config["protocols"]["digits-dsa"]["model_options"]["depth"] = 2
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: model_options\.depth"):
        build_plan(config)


def test_missing_real_protocol_points_at_real_protocols(config):
    del config["real_protocols"]["digits-ConvNet-3"]
    with pytest.raises(
        ConfigError,
        match=r"methods\.random\.metrics\.lrs_hard: no real-data training protocol for "
        r"'digits-ConvNet-3'.*real_protocols",
    ):
        build_plan(config)


def test_select_val_without_val_fraction_names_the_dataset(config):
    config["protocols"]["digits-dsa"]["select"] = "val"
    with pytest.raises(ConfigError, match=r"datasets\.digits\.val_fraction is 0"):
        build_plan(config)


def test_protocol_without_lr_or_lr_grid_raises_config_error(config):
    config["protocols"]["digits-dsa"]["lr_grid"] = None
    with pytest.raises(ConfigError, match=r"lr_grid"):
        build_plan(config)


# --- schema validation -----------------------------------------------------------------------


def test_validate_fills_protocol_defaults():
    config = raw_config()
    validate(config, SCHEMA)
    real = config["real_protocols"]["digits-ConvNet-3"]
    assert (real["optimizer"], real["weight_decay"]) == ("sgd", 0.0005)
    # left to the planner: the metric's test interval, the metric protocol's select
    assert real["select"] is None and real["test_interval"] == 10  # the demo sets it


def test_validate_rejects_an_unknown_top_level_key():
    config = raw_config()
    config["num_evals"] = 5
    with pytest.raises(WorkflowError, match="num_evals"):
        validate(config, SCHEMA)


def test_validate_rejects_a_bad_enum_value_naming_the_key():
    config = raw_config()
    config["protocols"]["digits-dsa"]["select"] = "worst"
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    assert "'worst' is not one of" in str(info.value)
    assert "['select']" in str(info.value)


def test_an_lr_inside_the_methods_pt_dict_counts_as_its_own(config, tmp_path):
    import torch

    path = tmp_path / "set.pt"
    torch.save({"images": torch.zeros(100, 1, 8, 8), "lr": 0.02}, path)
    config["methods"]["random"]["images"] = str(path)
    spec = build_plan(config).scores[("random", "lrs_hard")]["protocols"]
    assert spec["syn-any"]["lr_source"] == "set"
    torch.save({"images": torch.zeros(100, 1, 8, 8)}, path)
    spec = build_plan(config).scores[("random", "lrs_hard")]["protocols"]
    assert spec["syn-any"]["lr_source"] == "grid"


def test_rule_all_asks_for_every_cached_result_down_to_the_dataset(config):
    # a missing intermediate would otherwise never be rebuilt while the leaderboard exists
    plan = build_plan(config)
    cached = set(plan.cached_results())
    assert set(plan.score_targets()) <= cached
    assert set(plan.runs) <= cached
    assert {"results/datasets/digits/data.pt", "results/datasets/digits/meta.json"} <= cached
    assert "results/sets/digits/rdm/ipc10/seed2.pt" in cached
    assert "results/sets/digits/rdm/ipc10/seed2_png" in cached
    assert "results/sets/digits/syn/kmeans.pt" in cached
    assert "results/sets/digits/reference/ipc10/kmeans.pt" in cached
    assert any(p.startswith("results/runs/digits/real/") and p.endswith(".pt") for p in cached)
    assert all(p.startswith("results/") for p in cached)


# --- what the plan checks before any job runs -----------------------------------------------


def a_method(config, **changes) -> dict:
    method = {**copy.deepcopy(config["methods"]["kmeans"]), **changes}
    config["methods"]["mine"] = method
    return config


@pytest.mark.parametrize("key", ["images", "labels", "soft_labels"])
def test_a_method_file_that_does_not_exist_is_a_config_error(config, tmp_path, monkeypatch, key):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "set.pt").touch()
    config = a_method(config, images="set.pt")
    config["methods"]["mine"][key] = "distiled/set.pt"  # a typo
    with pytest.raises(ConfigError, match=rf"methods\.mine\.{key}: 'distiled/set.pt' not found"):
        build_plan(config)


def test_a_misspelt_image_folder_is_a_config_error(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "distilled" / "my_set").mkdir(parents=True)
    build_plan(a_method(copy.deepcopy(config), images="distilled/my_set"))  # the right path
    with pytest.raises(ConfigError, match=r"methods\.mine\.images: 'distilled/myset'.*working"):
        build_plan(a_method(config, images="distilled/myset"))


def test_a_quoted_number_lr_is_refused_and_an_lr_file_must_exist(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "set.pt").touch()
    with pytest.raises(ConfigError, match=r"methods\.mine\.lr: '0\.01' is a string.*lr: 0\.01\)"):
        build_plan(a_method(copy.deepcopy(config), images="set.pt", lr="0.01"))
    with pytest.raises(ConfigError, match=r"methods\.mine\.lr: 'lr.txt' not found"):
        build_plan(a_method(copy.deepcopy(config), images="set.pt", lr="lr.txt"))
    (tmp_path / "lr.txt").write_text("0.01\n")
    build_plan(a_method(config, images="set.pt", lr="lr.txt"))


def test_a_model_too_deep_for_the_images_names_the_protocol_and_the_depth_that_fits(config):
    config["protocols"]["digits-dsa"]["model"] = "ConvNet-4"  # 8x8 digits: 3 poolings at most
    with pytest.raises(ConfigError) as info:
        build_plan(config)
    message = str(info.value)
    assert message.startswith("protocols.digits-dsa.model: ConvNet-4 does not fit the 8x8")
    assert "dataset digits" in message and "largest depth that fits is ConvNet-3" in message
    config["protocols"]["digits-dsa"]["model"] = "ConvNet-33"  # no nonsense minimum size
    with pytest.raises(ConfigError, match=r"largest depth that fits is ConvNet-3$"):
        build_plan(config)


def test_a_model_with_no_depth_that_fits_says_so(config):
    config["protocols"]["digits-kd"].update(model="ResNet-18", model_options={})
    with pytest.raises(ConfigError, match=r"protocols\.digits-kd\.model: ResNet-18.*no depth"):
        build_plan(config)


def cifar_config(config, root) -> dict:
    config["datasets"]["cifar"] = {"source": "CIFAR10", "root": str(root)}
    config["methods"]["kmeans"]["dataset"] = "cifar"
    validate(config, SCHEMA)
    return config


def test_a_dataset_root_that_does_not_exist_is_named_at_plan_time(config, tmp_path):
    config = cifar_config(config, tmp_path / "data" / "cifar10")
    with pytest.raises(ConfigError) as info:
        build_plan(config)
    message = str(info.value)
    assert message.startswith("datasets.cifar: ")
    assert f"{tmp_path}/data/cifar10: field 'root': folder not found" in message
    assert "set datasets.cifar.root" in message and "<name>" not in message


def test_a_dataset_root_without_its_files_names_the_first_missing_one(config, tmp_path):
    root = tmp_path / "cifar10"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").touch()
    config = cifar_config(config, root)
    with pytest.raises(ConfigError, match=r"datasets\.cifar: .*data_batch_2: field 'file': not"):
        build_plan(config)


def test_an_unused_dataset_and_a_download_are_not_checked(config, tmp_path):
    config["datasets"]["cifar"] = {"source": "CIFAR10", "root": str(tmp_path / "nowhere")}
    validate(config, SCHEMA)
    build_plan(config)  # no method uses it: its files are not needed
    config["methods"]["kmeans"]["dataset"] = "cifar"
    config["datasets"]["cifar"]["download"] = True  # the prepare job fetches them
    config["protocols"]["digits-dsa"]["model"] = "ConvNet-3"
    build_plan(config)
