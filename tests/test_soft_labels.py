"""Soft labels: the losses, teachers, modes S and M, and how metrics plan their terms."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import dry_run, tiny_protocol
from snakemake.utils import validate

from ddrank_steps.errors import ConfigError, InputError
from ddrank_steps.models import build_model
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.training import run_steps
from ddrank_steps.training.engine import LabelRecipe, RunGroup, Split, train_one
from ddrank_steps.training.label_targets import soft_targets
from ddrank_steps.training.losses import (
    kl_loss,
    make_soft_loss,
    mse_gt_loss,
    resolve_kwargs,
    sce_loss,
)
from ddrank_steps.training.teachers import Ensemble, extract_state_dict, load_teacher

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


pytestmark = pytest.mark.usefixtures("one_thread")


# --- losses against hand-computed values -----------------------------------------------------

S0 = torch.tensor([[0.0, 0.0]])
T_LN3 = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> [0.75, 0.25]


def test_kl_matches_hand_value():
    # p_t = [.75, .25], p_s = [.5, .5]: .75 ln(1.5) + .25 ln(.5) = 0.130812
    assert kl_loss(S0, T_LN3, temperature=1.0).item() == pytest.approx(0.130812, abs=1e-6)


def test_sce_matches_hand_value():
    # −(.75 ln .5 + .25 ln .5) = ln 2
    assert sce_loss(S0, T_LN3, temperature=1.0).item() == pytest.approx(math.log(2), abs=1e-6)


def test_temperature_and_scale_loss():
    # T = 2: teacher logits [ln3, 0]/2 -> p_t = [√3, 1]/(√3 + 1); p_s stays uniform
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    kl = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    assert kl_loss(S0, T_LN3, temperature=2.0).item() == pytest.approx(kl, abs=1e-6)
    scaled = kl_loss(S0, T_LN3, temperature=2.0, scale_loss=True).item()
    assert scaled == pytest.approx(4 * kl, abs=1e-6)


def test_mse_gt_matches_hand_value():
    s = torch.tensor([[1.0, 2.0]])
    t = torch.zeros(1, 2)
    y = torch.tensor([1])
    # mean((s − t)²) = (1 + 4)/2 = 2.5; CE(s, 1) = ln(1 + e^−1) = 0.313262
    assert mse_gt_loss(s, t, y).item() == pytest.approx(2.5)
    value = mse_gt_loss(s, t, y, mse_weight=2.0, ce_weight=0.5).item()
    assert value == pytest.approx(2 * 2.5 + 0.5 * math.log(1 + math.exp(-1)), abs=1e-6)


def test_reference_defaults_fill_in_and_unknown_kwargs_are_errors():
    assert resolve_kwargs("kl", {}) == {"temperature": 1.2, "scale_loss": False}
    assert resolve_kwargs("mse_gt", {"ce_weight": 0.3}) == {"mse_weight": 1.0, "ce_weight": 0.3}
    with pytest.raises(ConfigError, match=r"loss_fn_kwargs \['tau'\].*'kl'"):
        resolve_kwargs("kl", {"tau": 2.0})
    with pytest.raises(ConfigError, match=r"soft_label_criterion 'l2'"):
        make_soft_loss("l2", {})


# --- teachers --------------------------------------------------------------------------------

SHAPE = (1, 8, 8)


def small_net():
    torch.manual_seed(0)
    return build_model("ConvNet-2", 3, 1, (8, 8), {"width": 8})


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd, "optimizer": {}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "state_dict", "model", "module-prefix", "wrapped-and-prefixed"],
)
def test_teacher_loads_every_checkpoint_shape(tmp_path, wrap):
    net = small_net()
    path = tmp_path / "ckpt_best.pt"
    torch.save(wrap(net.state_dict()), path)
    teacher = load_teacher(str(path), "ConvNet-2", {"width": 8}, 3, 1, (8, 8), torch.device("cpu"))
    x = torch.randn(4, *SHAPE)
    assert torch.allclose(teacher(x), net.eval()(x))
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_teacher_for_another_architecture_names_file_and_state_dict(tmp_path):
    path = tmp_path / "ckpt_best.pt"
    torch.save(small_net().state_dict(), path)
    with pytest.raises(InputError, match=r"ckpt_best\.pt: field 'state_dict': does not fit"):
        load_teacher(str(path), "ConvNet-2", {"width": 16}, 3, 1, (8, 8), torch.device("cpu"))


def test_missing_teacher_file_and_non_state_dict_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"nope\.pt: field 'teacher': file not found"):
        load_teacher(str(tmp_path / "nope.pt"), "ConvNet-2", {}, 3, 1, (8, 8), "cpu")
    with pytest.raises(InputError, match=r"field 'state_dict': is not a state dict"):
        extract_state_dict({"epoch": 3}, "x.pt")


def test_ensemble_averages_logits_and_stays_in_eval_mode():
    a, b = small_net(), small_net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.1)
    ensemble = Ensemble([a, b])
    ensemble.train()
    x = torch.randn(2, *SHAPE)
    assert not ensemble.training and not a.training
    assert torch.allclose(ensemble(x), (a(x) + b(x)) / 2)


# --- modes S and M in the engine -------------------------------------------------------------


def soft_protocol(mode: str, augmentation: str = "none") -> dict:
    labels = {
        "soft_label_mode": mode,
        # mode S here trains on labels stored in the set
        "label_source": "teachers" if mode == "M" else "set",
        "soft_label_criterion": "kl",
        "loss_fn_kwargs": {"temperature": 1.0, "scale_loss": False},
    }
    return tiny_protocol(
        "fixed",
        labels,
        model_options={"width": 8},
        augmentation=augmentation,
        weight_decay=0.0,
        scheduler="none",
        epochs=2,
        batch_size=4,
        test_interval=1,
        lr=0.01,
    )


def toy_data(n=8):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, *SHAPE, generator=g)
    labels = torch.arange(n) % 3
    return Split(images, labels), Split(images[:3].clone(), labels[:3].clone())


class SpyTeacher(torch.nn.Module):
    """A teacher whose logits are a function of its input; it records what it saw."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([m, -m, 2 * m], dim=1)


def test_mode_m_teachers_label_the_augmented_batch(monkeypatch):
    def plus_one(name, params):  # an "augmentation" whose effect is easy to recognise
        return lambda images, generator: (images + 1.0, None)

    monkeypatch.setattr(run_steps, "build_augmentation", plus_one)
    train, test = toy_data()
    spy = SpyTeacher()
    p = soft_protocol("M")
    p["augmentation"] = "plus-one"  # after the planner's check of the name, for the spy
    train_one(RunGroup(p, 0, train, test, None, SHAPE, 3, teachers=spy), 0.01)
    assert len(spy.seen) == 2 * 2  # 2 epochs × 2 batches of 4
    seen = torch.cat(spy.seen[:2])  # first epoch: every image once, augmented
    expected = train.images + 1.0
    for row in seen:
        assert any(torch.allclose(row, e) for e in expected)
    assert not any(torch.allclose(seen[0], x) for x in train.images)


def test_mode_s_trains_against_the_stored_labels(monkeypatch):
    seen = []
    real = make_soft_loss("kl", {"temperature": 1.0, "scale_loss": False})

    def spy_factory(criterion, kwargs):
        def loss(s, t, y):
            seen.append(t.detach().clone())
            return real(s, t, y)

        return loss

    monkeypatch.setattr(run_steps, "make_soft_loss", spy_factory)
    train, test = toy_data()
    train.soft = torch.randn(len(train.labels), 3)
    train_one(RunGroup(soft_protocol("S"), 0, train, test, None, SHAPE, 3), 0.01)
    targets = torch.cat(seen[:2])
    assert sorted(map(tuple, targets.tolist())) == sorted(map(tuple, train.soft.tolist()))


def test_mode_s_without_soft_labels_is_refused():
    train, test = toy_data()
    with pytest.raises(ValueError, match="mode S need"):
        train_one(RunGroup(soft_protocol("S"), 0, train, test, None, SHAPE, 3), 0.01)


def test_mixed_batch_mixes_soft_targets_with_lambda():
    from ddrank_steps.augment import Mix

    recipe = LabelRecipe(soft_protocol("S"), None)
    out = torch.randn(4, 3)
    soft = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    mix = Mix(perm=torch.tensor([1, 2, 3, 0]), lam=0.3)
    got = recipe.loss(out, None, labels, soft, mix)
    want = 0.3 * kl_loss(out, soft, 1.0) + 0.7 * kl_loss(out, soft[mix.perm], 1.0)
    assert got.item() == pytest.approx(want.item(), abs=1e-6)


def test_a_run_protocol_without_a_label_source_is_refused():
    p = soft_protocol("S")
    del p["label_source"]
    with pytest.raises(ConfigError, match="no label_source"):
        LabelRecipe(p, None)


def test_an_unknown_label_source_is_refused():
    with pytest.raises(ConfigError, match="label_source 'logits' is unknown"):
        LabelRecipe({**soft_protocol("S"), "label_source": "logits"}, None)


def test_stored_targets_follow_the_label_source(tmp_path):
    logits = torch.randn(4, 3)
    torch.save({"soft_labels": logits}, tmp_path / "soft.pt")
    from_file = {**soft_protocol("S"), "label_source": "teacher_logits"}
    got = soft_targets(from_file, None, 4, 3, "set.pt", str(tmp_path / "soft.pt"))
    assert torch.equal(got, logits)
    with pytest.raises(ConfigError, match="needs --soft-labels"):
        soft_targets(from_file, None, 4, 3, "set.pt", None)
    with pytest.raises(InputError, match=r"expected \(5, 3\)"):
        soft_targets(from_file, None, 5, 3, "set.pt", str(tmp_path / "soft.pt"))
    in_set = soft_protocol("S")  # label_source "set"
    assert torch.equal(soft_targets(in_set, {"soft_labels": logits}, 4, 3, "set.pt", None), logits)
    with pytest.raises(InputError, match=r"set\.pt: field 'soft_labels': missing"):
        soft_targets(in_set, {}, 4, 3, "set.pt", None)
    assert soft_targets(soft_protocol("M"), None, 4, 3, "set.pt", None) is None


# --- the plan: teachers, terms and sharing ---------------------------------------------------


@pytest.fixture
def config() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, SCHEMA)
    return copy.deepcopy(cfg)


def scores(plan, method, metric):
    return plan.scores[(method, metric)]


def test_missing_teacher_without_training_names_the_expected_path(config, tmp_path):
    config["teacher_dir"] = str(tmp_path / "teachers")
    config["train_teachers"] = False
    expected = tmp_path / "teachers" / "digits" / "ConvNet-3" / "ckpt_best.pt"
    with pytest.raises(ConfigError, match=rf"teacher ConvNet-3 .* not found at {expected}"):
        build_plan(config)


def test_teacher_found_under_teacher_dir_is_used_as_a_file(config, tmp_path):
    path = tmp_path / "teachers" / "digits" / "ConvNet-3" / "ckpt_best.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    config["teacher_dir"] = str(tmp_path / "teachers")
    plan = build_plan(config)
    syn_soft = scores(plan, "kmeans", "lrs_soft")["protocols"]["syn-any"]
    assert syn_soft["teachers"] == [
        {
            "model": "ConvNet-3",
            "model_options": {"width": 32, "activation": "relu", "pooling": "avgpooling"},
            "source": "file",
            "path": str(path),
        }
    ]
    key = syn_soft["key"]
    assert plan.label_inputs("digits", "syn-kmeans", key, 0) == {"teachers": [str(path)]}


def test_trained_teacher_is_the_real_hard_checkpoint_of_the_same_seed(config):
    plan = build_plan(config)
    spec = scores(plan, "kmeans", "lrs_soft")
    real_json = spec["rounds"][2]["terms"]["real-hard"]
    syn_key = spec["protocols"]["syn-any"]["key"]
    inputs = plan.label_inputs("digits", "syn-kmeans", syn_key, spec["rounds"][2]["seed"])
    assert inputs == {"teachers": [real_json.replace(".json", ".pt")]}


def test_lrs_soft_terms_and_reference_lr_rules(config):
    config["methods"]["kmeans"]["lr"] = 0.02
    spec = scores(build_plan(config), "kmeans", "lrs_soft")["protocols"]
    assert spec["syn-any"]["labels"] == "soft" and spec["syn-any"]["lr_source"] == "set"
    assert spec["rdm-any"]["labels"] == "soft" and spec["rdm-any"]["lr_source"] == "grid"
    # the reference searches the grid for syn-hard even when the method has an lr
    assert spec["syn-hard"]["labels"] == "hard" and spec["syn-hard"]["lr_source"] == "grid"
    assert spec["real-hard"]["labels"] == "hard"


def test_use_aug_for_hard_decides_the_syn_hard_augmentation(config):
    spec = scores(build_plan(config), "random", "lrs_soft")["protocols"]
    assert spec["syn-hard"]["augmentation"] == "dsa"  # the demo sets use_aug_for_hard
    config["methods"]["random"]["metrics"] = copy.deepcopy(config["methods"]["random"]["metrics"])
    config["methods"]["random"]["metrics"]["lrs_soft"]["use_aug_for_hard"] = False
    spec = scores(build_plan(config), "random", "lrs_soft")["protocols"]
    assert spec["syn-hard"]["augmentation"] == "none" and spec["syn-hard"]["aug_params"] == {}


def test_ars_naug_runs_drop_only_the_augmentation(config):
    spec = scores(build_plan(config), "herding", "ars")["protocols"]
    for arm in ("syn", "rdm"):
        aug, naug = spec[f"{arm}-aug"], spec[f"{arm}-naug"]
        assert aug["augmentation"] == "dsa"
        assert naug["augmentation"] == "none" and naug["aug_params"] == {}
        rest = {k for k in aug if k not in ("augmentation", "aug_params", "key")}
        assert {k: aug[k] for k in rest} == {k: naug[k] for k in rest}


def test_ars_with_hard_labels_and_without_augmentation(config):
    config["methods"]["herding"]["metrics"] = copy.deepcopy(config["methods"]["herding"]["metrics"])
    ars = config["methods"]["herding"]["metrics"]["ars"]
    ars["label_type"] = "hard"
    spec = scores(build_plan(config), "herding", "ars")["protocols"]
    assert spec["syn-aug"]["labels"] == "hard" and "teachers" not in spec["syn-aug"]
    config["protocols"]["digits-kd"]["augmentation"] = "none"
    with pytest.raises(ConfigError, match=r"metrics\.ars\.protocol 'digits-kd': ARS compares"):
        build_plan(config)


def test_terms_shared_between_metrics_are_one_run(config):
    plan = build_plan(config)
    for r_hard, r_soft, r_ars, r_acc in zip(
        *(scores(plan, "kmeans", m)["rounds"] for m in ("lrs_hard", "lrs_soft", "ars", "accuracy")),
        strict=True,
    ):
        assert r_soft["terms"]["syn-hard"] == r_hard["terms"]["syn-hard"]
        assert r_ars["terms"]["syn-aug"] == r_soft["terms"]["syn-any"]
        assert r_ars["terms"]["rdm-aug"] == r_soft["terms"]["rdm-any"]
        assert r_acc["terms"]["syn-any"] == r_soft["terms"]["syn-any"]


def test_mode_s_plans_soft_label_stages_unless_the_method_gives_its_own(
    config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the plan checks that the method's files exist
    (tmp_path / "kmeans_soft.pt").touch()
    config["protocols"]["digits-kd"]["soft_label_mode"] = "S"
    config["methods"]["kmeans"]["soft_labels"] = "kmeans_soft.pt"
    plan = build_plan(config)
    rdm_key = scores(plan, "kmeans", "lrs_soft")["protocols"]["rdm-any"]["key"]
    rdm_inputs = plan.label_inputs("digits", "rdm-ipc10", rdm_key, 1)
    assert list(rdm_inputs) == ["soft_labels"]
    assert rdm_inputs["soft_labels"].startswith("results/soft_labels/digits/rdm-ipc10/")
    assert rdm_inputs["soft_labels"].endswith("/seed1.pt")
    syn = scores(plan, "kmeans", "lrs_soft")["protocols"]["syn-any"]
    assert syn["soft_source"] == "set" and "teachers" not in syn
    assert plan.label_inputs("digits", "syn-kmeans", syn["key"], 1) == {}
    other = scores(plan, "herding", "lrs_soft")["protocols"]["syn-any"]
    assert other["soft_source"] == "teachers"


@pytest.mark.parametrize("where", ["labels_file", "images_dict", "images_dict_soft_key"])
def test_mode_s_trains_on_soft_labels_given_in_any_documented_place(config, tmp_path, where):
    # The config README says soft labels in `labels` (or in the images' dict) "add soft
    # labels": mode S must train on them, not on teacher logits.
    config["protocols"]["digits-kd"]["soft_label_mode"] = "S"
    images, soft = torch.zeros(100, 1, 8, 8), torch.randn(100, 10)
    method = config["methods"]["kmeans"]
    method["images"] = str(tmp_path / "x.pt")
    if where == "labels_file":
        torch.save(images, method["images"])
        torch.save(soft, tmp_path / "y.pt")
        method["labels"] = str(tmp_path / "y.pt")
    else:
        key = "labels" if where == "images_dict" else "soft_labels"
        torch.save({"images": images, key: soft}, method["images"])
    syn = scores(build_plan(config), "kmeans", "lrs_soft")["protocols"]["syn-any"]
    assert syn["label_source"] == "set" and "teachers" not in syn


def test_hard_labels_alone_leave_mode_s_to_the_teachers(config, tmp_path):
    config["protocols"]["digits-kd"]["soft_label_mode"] = "S"
    method = config["methods"]["kmeans"]
    method["images"] = str(tmp_path / "x.pt")
    torch.save(
        {"images": torch.zeros(100, 1, 8, 8), "labels": torch.arange(100) % 10}, method["images"]
    )
    syn = scores(build_plan(config), "kmeans", "lrs_soft")["protocols"]["syn-any"]
    assert syn["label_source"] == "teacher_logits"


# --- the soft_labels stage -------------------------------------------------------------------


def test_soft_labels_stage_writes_teacher_logits(tmp_path):
    import json

    from ddrank_steps.training.teachers import save_checkpoint

    net = small_net()
    save_checkpoint(str(tmp_path / "t.pt"), net.state_dict(), {"model": "ConvNet-2"}, {})
    images = torch.randn(6, *SHAPE)
    torch.save({"images": images, "labels": torch.arange(6) % 3, "info": {}}, tmp_path / "set.pt")
    meta = {
        "name": "toy",
        "num_classes": 3,
        "channels": 1,
        "height": 8,
        "width": 8,
        "mean": [0.0],
        "std": [1.0],
        "max_value": 1.0,
        "classes": ["a", "b", "c"],
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    specs = json.dumps([{"model": "ConvNet-2", "model_options": {"width": 8}}])
    cmd = [
        sys.executable,
        "-m",
        "ddrank_steps.stages.soft_labels",
        *("--set", str(tmp_path / "set.pt"), "--meta", str(tmp_path / "meta.json")),
        *("--teachers", specs, "--teacher", str(tmp_path / "t.pt")),
        *("--device", "cpu", "--batch-size", "4", "--out", str(tmp_path / "soft.pt")),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = torch.load(tmp_path / "soft.pt", weights_only=True)
    with torch.no_grad():
        assert torch.allclose(out["soft_labels"], net.eval()(images), atol=1e-5)


# --- the reference's soft-label demo configs, translated -------------------------------------


@pytest.mark.workflow
def test_reference_soft_label_demos_validate_and_dry_run(tmp_path):
    config = yaml.safe_load((REPO / "config" / "reference-imagenet-soft.yaml").read_text())
    config["teacher_dir"] = str(tmp_path / "teacher_models")
    root = tmp_path / "ImageNet1K"  # the plan checks the tree's layout (no image is read)
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True)
    config["datasets"]["ImageNet1K"]["root"] = str(root)
    images = tmp_path / "images.pt"
    torch.save(torch.zeros(1), images)  # a dry-run plans jobs; it reads no set
    config["methods"]["my_method"]["images"] = str(images)
    text = dry_run(tmp_path, config)
    # per round: syn-hard (no aug), syn-soft = syn-aug, rdm-soft = rdm-aug, syn-naug, rdm-naug
    import re

    assert re.search(r"^train\s+25$", text, re.MULTILINE), text[-3000:]
    # no teacher checkpoint on disk: the real-hard ResNet-18-BN of each round teaches
    assert re.search(r"^train_real\s+5$", text, re.MULTILINE), text[-3000:]


def test_torchvision_built_teacher_loads_from_a_ddp_checkpoint(tmp_path):
    # the reference's tea_use_torchvision: a torchvision ResNet with the small-input stem
    options = {"torchvision": True}
    torch.manual_seed(0)
    net = build_model("ResNet-18-BN", 10, 3, (32, 32), options).eval()
    path = tmp_path / "ckpt_best.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    teacher = load_teacher(str(path), "ResNet-18-BN", options, 10, 3, (32, 32), "cpu")
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(teacher(x), net(x), atol=1e-5)


def test_a_teacher_trained_for_ars_alone_is_planned_on_the_real_split(config):
    # no metric with a real-hard term: the teacher's real-hard run still needs its set
    for method in config["methods"].values():
        method["metrics"] = {"ars": method["metrics"]["ars"]}
    plan = build_plan(config)
    assert plan.sets["real"].kind == "real" and plan.set_file("digits", "real", 0) is None
