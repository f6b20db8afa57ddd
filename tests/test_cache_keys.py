"""Cache keys: one key per training, whatever its spelling, and a new key whenever the
training can change.

A run's key hashes its canonical run protocol (`keys.canonicalise`), so the reference's
parameter names and ours, defaults written out or left to the code, and equal numbers in
int or float form all key one run; and every protocol field that reaches the engine moves
the key (checked field by field, against the schema, so a field added later cannot be
forgotten).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from ddrank_steps.augment.dsa import DSAParams
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.keys import NOT_IN_KEY

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def validated() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(SCHEMA_FILE))
    return config


@pytest.fixture
def config(validated) -> dict:
    """The demo, plus a hard-label protocol of its own for `accuracy` (so its labels can
    change) and a real-hard recipe for ConvNet-2 (so the model can)."""
    config = copy.deepcopy(validated)
    config["protocols"]["digits-acc"] = copy.deepcopy(config["protocols"]["digits-dsa"])
    for method in config["methods"].values():
        method["metrics"]["accuracy"]["protocol"] = "digits-acc"
    real = config["real_protocols"]
    real["digits-ConvNet-2"] = copy.deepcopy(real["digits-ConvNet-3"])
    return config


def key_of(config: dict, metric: str = "lrs_hard", term: str = "syn-any") -> str:
    return build_plan(config).scores[("kmeans", metric)]["protocols"][term]["key"]


# --- equal runs, one key ---------------------------------------------------------------------


# DSA's defaults written out (tests/test_dsa.py checks their values), without the mode
DSA_DEFAULTS = {k: v for k, v in dataclasses.asdict(DSAParams()).items() if k != "mode"}


@pytest.mark.parametrize(
    "augmentation, spellings",
    [
        (
            "dsa",
            [
                {},
                DSA_DEFAULTS,
                {"ratio_scale": 1.2, "prob_flip": 0.5},
                {**DSA_DEFAULTS, "mode": "S"},
            ],
        ),
        ("cutmix", [{}, {"beta": 1.0}, {"alpha": 1}, {"alpha": 1.0, "p": 1.0}, {"cutmix_p": 1.0}]),
        ("mixup", [{}, {"alpha": 0.8}, {"lambda": 0.8}]),
    ],
)
def test_every_spelling_of_one_augmentation_shares_a_key(config, augmentation, spellings):
    keys = set()
    for params in spellings:
        protocol = config["protocols"]["digits-dsa"]
        protocol["augmentation"], protocol["aug_params"] = augmentation, params
        keys.add(key_of(config))
    assert len(keys) == 1


def test_upper_case_augmentation_names_share_a_key(config):
    base = key_of(config)
    config["protocols"]["digits-dsa"]["augmentation"] = "DSA"
    assert key_of(config) == base


@pytest.mark.parametrize(
    "options",
    [
        {"width": 32, "activation": "relu", "pooling": "avgpooling"},
        {"width": 32, "pooling": "avg"},
    ],
)
def test_model_options_at_their_defaults_share_a_key(config, options):
    base = key_of(config)  # the demo writes {width: 32}
    config["protocols"]["digits-dsa"]["model_options"] = options
    assert key_of(config) == base


def test_an_empty_model_options_is_the_default_width(config):
    for p in config["protocols"].values():
        p["model_options"] = {}
    base = key_of(config)
    for p in config["protocols"].values():
        p["model_options"] = {"width": 128}
    assert key_of(config) == base


def test_integral_numbers_written_as_floats_share_a_key(config):
    protocol = config["protocols"]["digits-dsa"]
    protocol["weight_decay"], protocol["momentum"] = 0, 1
    base = key_of(config)
    protocol["weight_decay"], protocol["momentum"] = 0.0, 1.0
    assert key_of(config) == base


def test_an_adam_momentum_pair_as_floats_or_ints_shares_a_key(config):
    protocol = config["protocols"]["digits-dsa"]
    protocol["optimizer"], protocol["momentum"] = "adamw", [0.9, 0.999]
    base = key_of(config)
    protocol["momentum"] = [0.9, 0.999]
    assert key_of(config) == base


def test_writing_out_the_metrics_default_test_interval_keeps_the_key(config):
    config["protocols"]["digits-dsa"]["test_interval"] = None
    base = key_of(config)
    config["protocols"]["digits-dsa"]["test_interval"] = 10  # LRS-hard's default
    assert key_of(config) == base


# How jobs share the machine changes no result: it never reaches a key (real_processes does,
# and is tested in test_protocol_defects.py).
MACHINE_RESOURCES = {
    "jobs_per_gpu": 4,
    "train_gpus": 1,
    "train_threads": 4,
    "train_mem_mb": 16000,
    "train_runtime": 600,
}


def all_keys(config: dict) -> dict:
    plan = build_plan(config)
    return {
        (score, term): protocol["key"]
        for score, entry in plan.scores.items()
        for term, protocol in entry["protocols"].items()
    }


@pytest.mark.parametrize("resource", sorted(MACHINE_RESOURCES))
def test_machine_resources_move_no_key(config, resource):
    base = all_keys(config)
    config.setdefault("resources", {})[resource] = MACHINE_RESOURCES[resource]
    assert all_keys(config) == base


# --- every field that reaches the engine moves the key ---------------------------------------

# schema field -> (protocol, another valid value, metric, term whose key must move)
PERTURBATIONS = {
    "model": ("digits-dsa", "ConvNet-2", "lrs_hard", "syn-any"),
    "model_options": ("digits-dsa", {"width": 16}, "lrs_hard", "syn-any"),
    "labels": ("digits-acc", "soft", "accuracy", "syn-any"),
    "soft_label_mode": ("digits-kd", "S", "lrs_soft", "syn-any"),
    "soft_label_criterion": ("digits-kd", "sce", "lrs_soft", "syn-any"),
    "loss_fn_kwargs": ("digits-kd", {"temperature": 4.0}, "lrs_soft", "syn-any"),
    "teacher_model_names": ("digits-kd", ["ConvNet-2"], "lrs_soft", "syn-any"),
    "augmentation": ("digits-dsa", "mixup", "lrs_hard", "syn-any"),
    "aug_params": ("digits-dsa", {"rotate": 10.0}, "lrs_hard", "syn-any"),
    "optimizer": ("digits-dsa", "adam", "lrs_hard", "syn-any"),
    "momentum": ("digits-dsa", 0.5, "lrs_hard", "syn-any"),
    "weight_decay": ("digits-dsa", 0.001, "lrs_hard", "syn-any"),
    "scheduler": ("digits-dsa", "cosine", "lrs_hard", "syn-any"),
    "step_size": ("digits-dsa", 20, "lrs_hard", "syn-any"),
    "gamma": ("digits-dsa", 0.5, "lrs_hard", "syn-any"),
    "epochs": ("digits-dsa", 50, "lrs_hard", "syn-any"),
    "batch_size": ("digits-dsa", 64, "lrs_hard", "syn-any"),
    "lr": ("digits-dsa", 0.01, "lrs_hard", "syn-any"),
    "lr_grid": ("digits-dsa", [0.01, 0.1], "lrs_hard", "syn-any"),
    "test_interval": ("digits-dsa", 5, "lrs_hard", "syn-any"),
    "select": ("digits-dsa", "final", "lrs_hard", "syn-any"),
    "precision": ("digits-dsa", "bf16", "lrs_hard", "syn-any"),
    "divergence": ("digits-dsa", {"loss_growth": 50}, "lrs_hard", "syn-any"),
    "train_transforms": (
        "digits-dsa",
        [{"name": "RandomHorizontalFlip", "args": {"p": 0.5}}],
        "lrs_hard",
        "syn-any",
    ),
    "test_transforms": (
        "digits-dsa",
        [{"name": "Pad", "args": {"padding": 0}}],
        "lrs_hard",
        "syn-any",
    ),
}


def schema_protocol_fields() -> set[str]:
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    return set(schema["$defs"]["protocol"]["properties"])


def test_every_protocol_field_of_the_schema_has_a_perturbation():
    assert set(PERTURBATIONS) == schema_protocol_fields()


@pytest.mark.parametrize("field", sorted(PERTURBATIONS))
def test_changing_a_protocol_field_moves_the_key(config, field):
    protocol, value, metric, term = PERTURBATIONS[field]
    base = key_of(config, metric, term)
    config["protocols"][protocol][field] = value
    if field == "augmentation":  # DSA's parameters mean nothing to Mixup
        config["protocols"][protocol]["aug_params"] = {}
    assert key_of(config, metric, term) != base, field


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.02),
        ("epochs", 30),
        ("batch_size", 64),
        ("weight_decay", 0.0),
        ("train_transforms", [{"name": "RandomCrop", "args": {"size": 8, "padding": 1}}]),
    ],
)
def test_changing_a_real_protocol_field_moves_the_real_hard_key(config, field, value):
    base = key_of(config, "lrs_hard", "real-hard")
    config["real_protocols"]["digits-ConvNet-3"][field] = value
    assert key_of(config, "lrs_hard", "real-hard") != base


# --- what the training code reads, the key holds ---------------------------------------------

# Modules that run a training job or read its run protocol.
ENGINE_SIDE = [
    "ddrank_steps/training/engine.py",
    "ddrank_steps/training/group.py",
    "ddrank_steps/training/divergence.py",
    "ddrank_steps/training/run_steps.py",
    "ddrank_steps/training/evaluation.py",
    "ddrank_steps/training/together.py",
    "ddrank_steps/training/optimisers.py",
    "ddrank_steps/training/losses.py",
    "ddrank_steps/training/label_targets.py",
    "ddrank_steps/training/teachers.py",
    "ddrank_steps/data/streaming.py",
    "ddrank_steps/transforms/batches.py",
    "ddrank_steps/stages/train.py",
    "ddrank_steps/stages/soft_labels.py",
]


def keys_read(path: Path) -> set[str]:
    """String keys read as `protocol[...]` / `protocol.get(...)` (any name holding a
    run protocol: protocol, run_protocol, p)."""
    names = {"protocol", "run_protocol"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = key = None
        if isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
        ):
            target, key = node.func.value, node.args[0]
        holder = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if holder in names and isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.add(key.value)
    return found


def test_every_protocol_key_the_training_code_reads_is_in_the_cache_key(config):
    plan = build_plan(config)
    keyed = {k for p in plan.protocols.values() for k in p} - set(NOT_IN_KEY)
    # in some runs only
    keyed |= {"lr", "processes", "train_transforms", "test_transforms", "divergence"}
    read = set().union(*(keys_read(REPO / f) for f in ENGINE_SIDE))
    assert read, "the scan found nothing: has the code stopped calling it `protocol`?"
    # label_source follows from keyed fields (plan.NOT_IN_KEY says why)
    assert read - keyed <= set(NOT_IN_KEY), read - keyed - set(NOT_IN_KEY)
