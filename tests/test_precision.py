"""The protocol's `precision`: fp32 keeps every key and value it had, bf16 and fp16 are
other runs (keyed, recorded), a device that cannot run one is a config error before any
job, and an overflow is a diverged LR like any other."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_protocol, toy_split
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.training import engine, precision, run_steps
from ddrank_steps.training.engine import RunResult, Split, select_lr

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "workflow" / "schemas" / "config.schema.yaml"
SHAPE = (1, 8, 8)
# The demo's run keys on main before the switch existed (cc4c2d3): an fp32 protocol,
# written out or not, must keep them, or every cached result would be recomputed.
DEMO_KEYS_BEFORE_PRECISION = ["433f8924cd", "a48a576e70", "c4695f35bc", "ff55c443cc"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def demo() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(SCHEMA_FILE))
    return config


def keys(config: dict) -> list[str]:
    return sorted(build_plan(config).protocols)


# --- cache keys ------------------------------------------------------------------------------


def test_the_demo_keeps_its_keys_with_the_default_precision(demo):
    assert keys(demo) == DEMO_KEYS_BEFORE_PRECISION


def test_writing_fp32_out_keeps_every_key(demo):
    for protocol in demo["protocols"].values():
        protocol["precision"] = "fp32"
    assert keys(demo) == DEMO_KEYS_BEFORE_PRECISION


def test_bf16_moves_every_key_of_its_protocol_real_hard_included(demo):
    bf16 = copy.deepcopy(demo)
    for protocol in bf16["protocols"].values():
        protocol["precision"] = "bf16"
    plan = build_plan(bf16)
    assert not set(plan.protocols) & set(DEMO_KEYS_BEFORE_PRECISION)
    real = [p for p in plan.protocols.values() if p.get("processes")]
    assert real and all(p["precision"] == "bf16" for p in real)


def test_a_real_protocol_cannot_train_in_another_precision(demo):
    name = next(iter(demo["real_protocols"]))
    demo["real_protocols"][name]["precision"] = "bf16"
    with pytest.raises(ConfigError, match=rf"real_protocols\.{name}\.precision"):
        build_plan(demo)


def test_fp16_on_a_cpu_device_is_a_config_error_naming_the_protocol(demo):
    demo["device"] = "cpu"
    name = next(iter(demo["protocols"]))
    demo["protocols"][name]["precision"] = "fp16"
    with pytest.raises(ConfigError, match=rf"protocols\.{name}\.precision: fp16 .*bf16"):
        build_plan(demo)


def test_the_job_refuses_fp16_off_cuda_before_reading_data():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        precision.check_supported("fp16", torch.device("cpu"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_job_accepts_what_the_gpu_supports():
    device = torch.device("cuda")
    precision.check_supported("fp16", device)
    if torch.cuda.is_bf16_supported(including_emulation=False):
        precision.check_supported("bf16", device)


# --- training --------------------------------------------------------------------------------


TRAIN, TEST = toy_split(40, seed=0), toy_split(40, seed=1)


def train(arithmetic: str, device: str = "cpu", **changes):
    p = tiny_protocol("grid", **changes)
    if arithmetic != "fp32":
        p["precision"] = arithmetic
    on = torch.device(device)
    train_split = Split(TRAIN.images.to(on), TRAIN.labels.to(on))
    test_split = Split(TEST.images.to(on), TEST.labels.to(on))
    group = engine.RunGroup(p, 0, train_split, test_split, None, SHAPE, num_classes=2)
    return engine.train_group(group, p["lr_grid"], show_progress=False)


def output_dtypes(monkeypatch) -> list[torch.dtype]:
    """The dtype of every model output from now on (training steps and evaluation)."""
    dtypes = []
    build = run_steps.build_model

    def recording_build(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        return model

    monkeypatch.setattr(run_steps, "build_model", recording_build)
    return dtypes


def test_bf16_trains_under_autocast_and_learns_the_toy_problem(monkeypatch):
    dtypes = output_dtypes(monkeypatch)
    results, best = train("bf16", epochs=6, lr_grid=[0.05])
    assert set(dtypes) == {torch.bfloat16}  # training steps and evaluation alike
    assert results[best].acc >= 0.9


def test_fp32_runs_no_autocast(monkeypatch):
    dtypes = output_dtypes(monkeypatch)
    train("fp32", epochs=2, lr_grid=[0.05])
    assert set(dtypes) == {torch.float32}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_trains_with_a_grad_scaler_on_cuda():
    results, best = train("fp16", device="cuda", epochs=6, lr_grid=[0.05])
    assert results[best].acc >= 0.9


def test_a_diverged_lr_is_never_selected_while_another_trained():
    diverged = RunResult(lr=1.0, acc=0.9, curve=[{"epoch": 1, "train_loss": None}])
    fine = RunResult(lr=0.1, acc=0.6, curve=[{"epoch": 1, "train_loss": 0.5}])
    assert select_lr([diverged, fine], "best") == 1
    # every LR diverged: the rule picks among them, and the run is marked diverged
    assert select_lr([diverged, copy.deepcopy(diverged)], "best") == 0
