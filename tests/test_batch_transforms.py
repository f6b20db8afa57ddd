"""A protocol's train_transforms / test_transforms: applied per image in [0, 1] pixels to
normalised batches, seeded, size-keeping, one deterministic test list for all terms."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TREE_MEAN, TREE_STD, run_train_stage, tiny_protocol
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.errors import ConfigError
from ddrank_steps.planning.builder import build_plan
from ddrank_steps.planning.keys import protocol_key, run_protocol
from ddrank_steps.training.engine import RunGroup, Split, train_one
from ddrank_steps.transforms.batches import BatchTransform, protocol_transforms

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]

# The reference's CIFAR list (its config template), verbatim but for the 8-px toy size.
REFERENCE_TRAIN = yaml.safe_load(
    """
- name: RandomCrop
  args: {size: 8, padding: 2}
- name: RandomHorizontalFlip
  args: {p: 0.5}
- name: ToTensor
- name: Normalize
  args:
    mean: [0.4914, 0.4822, 0.4465]
    std: [0.2023, 0.1994, 0.2010]
"""
)


def meta(**changes) -> DatasetMeta:
    fields = {
        "name": "toy",
        "num_classes": 3,
        "channels": 3,
        "height": 8,
        "width": 8,
        "mean": MEAN,
        "std": STD,
        "max_value": 255.0,
        "classes": ["a", "b", "c"],
    }
    return DatasetMeta(**{**fields, **changes})


def normalised(n: int = 6, seed: int = 0) -> torch.Tensor:
    pixels = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def black() -> torch.Tensor:
    """A black pixel in the normalised space, per channel."""
    return (-torch.tensor(MEAN) / torch.tensor(STD)).view(3, 1, 1)


def item(name: str, **args) -> dict:
    return {"name": name, "args": args} if args else {"name": name}


# --- the list on a batch ---------------------------------------------------------------------


def test_conversions_and_the_datasets_own_normalize_leave_images_as_they_are():
    t = BatchTransform([item("ToTensor"), item("Normalize", mean=MEAN, std=STD)], meta(), "k")
    x = normalised()
    assert t(x) is x


def test_flip_is_exact_in_the_normalised_space():
    t = BatchTransform([item("RandomHorizontalFlip", p=1.0)], meta(), "train_transforms")
    x = normalised()
    torch.testing.assert_close(t(x), x.flip(-1), rtol=0, atol=1e-6)


def test_each_image_draws_its_own_crop_and_padding_is_black():
    t = BatchTransform([item("RandomCrop", size=8, padding=3)], meta(), "train_transforms")
    x = normalised(1).expand(32, -1, -1, -1).contiguous()  # one image, 32 times
    torch.manual_seed(0)
    out = t(x)
    assert len({o.numpy().tobytes() for o in out}) > 10  # per image, not per batch
    # a crop shifted by the padding shows black (0 in pixels) at its edge
    shifted = [o for o in out if not torch.allclose(o, x[0], atol=1e-6)]
    edges = torch.stack([o[..., 0, :] for o in shifted] + [o[..., -1, :] for o in shifted])
    edges = torch.cat([edges, torch.stack([o[..., :, 0] for o in shifted])])
    assert any(torch.allclose(e, black().view(3, 1).expand(3, 8), atol=1e-5) for e in edges)


def test_a_seed_reproduces_the_draws():
    t = BatchTransform(REFERENCE_TRAIN, meta(), "train_transforms")
    x = normalised(16)
    torch.manual_seed(5)
    a = t(x)
    torch.manual_seed(5)
    b = t(x)
    torch.manual_seed(6)
    c = t(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_reseeded_list_keeps_its_stream_whatever_else_draws_from_the_global_rng():
    t = BatchTransform(REFERENCE_TRAIN, meta(), "train_transforms")
    x = normalised(16)
    t.reseed(7)
    quiet = [t(x), t(x)]
    t.reseed(7)
    first = t(x)
    torch.rand(1000)  # e.g. a DataLoader taking its base seed between two batches
    noisy = [first, t(x)]
    assert all(torch.equal(a, b) for a, b in zip(quiet, noisy, strict=True))
    assert not torch.equal(quiet[0], quiet[1])  # the stream moves on from batch to batch


def test_items_after_normalize_act_in_the_normalised_space():
    erase = item("RandomErasing", p=1.0, scale=[0.2, 0.2], ratio=[1.0, 1.0], value=0)
    after = BatchTransform([item("Normalize", mean=MEAN, std=STD), erase], meta(), "k")
    before = BatchTransform([erase], meta(), "k")  # normalised after the last item
    x = normalised(1)
    erased_after, erased_before = after(x)[0], before(x)[0]
    hole = erased_after == 0
    assert hole.any() and not (x[0] == 0).any()
    # erased to 0 in pixels = black once normalised
    holes_before = (erased_before - black()).abs() < 1e-5
    assert holes_before.sum() == hole.sum()


def test_a_normalize_with_other_statistics_is_refused_naming_the_fix():
    spec = [item("ToTensor"), item("Normalize", mean=[0.5] * 3, std=[0.5] * 3)]
    with pytest.raises(ConfigError, match=r"train_transforms\[1\] \(Normalize\).*datasets\.toy"):
        BatchTransform(spec, meta(), "train_transforms")


def test_a_list_that_changes_the_image_size_is_refused():
    t = BatchTransform([item("Resize", size=4)], meta(), "train_transforms")
    with pytest.raises(ConfigError, match=r"train_transforms \['Resize'\].*image_size"):
        t(normalised())


@pytest.mark.parametrize(
    "spec, changes, message",
    [
        ([item("ToPILImage")], {}, r"\[0\] \(ToPILImage\)"),
        ([item("RandomCrop", size=8)], {"zca": True}, "ZCA-whitened"),
        ([item("RandomCrup", size=8)], {}, r"test_transforms\[0\].*RandomCrop"),
    ],
)
def test_bad_lists_are_config_errors(spec, changes, message):
    with pytest.raises(ConfigError, match=message):
        BatchTransform(spec, meta(**changes), "test_transforms")


def test_a_random_test_list_is_refused_and_a_fixed_one_applies_once():
    x = normalised(10)
    random_crop = BatchTransform([item("RandomCrop", size=8, padding=2)], meta(), "test_transforms")
    with pytest.raises(ConfigError, match="belong in train_transforms"):
        random_crop.apply_to_split(x)
    spec = [item("CenterCrop", size=6), item("Pad", padding=1)]  # a black frame
    fixed = BatchTransform(spec, meta(), "test_transforms")
    out = fixed.apply_to_split(x)
    torch.testing.assert_close(out[:, :, 1:-1, 1:-1], x[:, :, 1:-1, 1:-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[:, :, 0, :], black().view(1, 3, 1).expand(10, 3, 8))


def test_protocol_transforms_reads_both_keys():
    train, test = protocol_transforms({"train_transforms": REFERENCE_TRAIN}, meta())
    assert train.names == ["RandomCrop", "RandomHorizontalFlip", "Normalize"] and test is None


# --- vectorised stages ---------------------------------------------------------------------


def windows(image: torch.Tensor, padding: list[int], size: int) -> dict[tuple, torch.Tensor]:
    """Every crop torchvision's RandomCrop could return, by (top, left)."""
    from torchvision.transforms.v2 import functional as F

    padded = F.pad(image, padding)
    h, w = padded.shape[-2:]
    return {
        (top, left): padded[..., top : top + size, left : left + size]
        for top in range(h - size + 1)
        for left in range(w - size + 1)
    }


def test_vectorised_crop_returns_torchvisions_windows_with_every_offset():
    from torchvision.transforms import v2

    from ddrank_steps.transforms.vectorised import BatchRandomCrop

    crop = v2.RandomCrop(8, padding=[1, 2])  # left/right 1, top/bottom 2
    image = torch.rand(3, 8, 8)
    options = windows(image, [1, 2, 1, 2], 8)  # F.pad: left, top, right, bottom
    torch.manual_seed(0)
    out = BatchRandomCrop(crop)(image.expand(400, -1, -1, -1))
    seen = set()
    for o in out:
        match = [k for k, w in options.items() if torch.equal(o, w)]
        assert match, "not a window of the padded image"
        seen.update(match)
    assert seen == set(options)  # tops 0..4, lefts 0..2: all 15 drawn


def test_vectorised_flip_flips_each_image_with_its_probability():
    x = normalised(2000)
    t = BatchTransform([item("RandomVerticalFlip", p=0.3)], meta(), "train_transforms")
    torch.manual_seed(0)
    out = t(x)
    flipped = (out - x.flip(-2)).abs().amax(dim=(1, 2, 3)) < 1e-5
    kept = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((flipped | kept).all())
    assert 0.26 < flipped.float().mean().item() < 0.34


def test_whole_batch_items_equal_their_per_image_result_and_others_run_per_image():
    from torchvision.transforms import v2

    from ddrank_steps.transforms.vectorised import PerImage, WholeBatch, stages

    spec = [
        v2.Pad(2),
        v2.CenterCrop(10),
        v2.Resize(8, antialias=True),
        v2.ColorJitter(brightness=0.5),
        v2.RandomGrayscale(0.5),
        v2.RandomHorizontalFlip(),
    ]
    kinds = [type(s).__name__ for s in stages(spec)]
    assert kinds == ["WholeBatch", "WholeBatch", "WholeBatch", "PerImage", "BatchFlip"]
    x = torch.rand(5, 3, 8, 8)
    whole = v2.Compose(spec[:3])
    assert torch.equal(WholeBatch(whole)(x), PerImage(spec[:3])(x))


# --- the engine -----------------------------------------------------------------------------


def toy_split(n: int, seed: int) -> Split:
    labels = torch.arange(n) % 3
    return Split(normalised(n, seed), labels)


def test_every_training_batch_is_transformed_before_the_model_and_a_seed_repeats_the_run(
    one_thread,
):
    seen = []

    class Spy(BatchTransform):
        def __call__(self, images):
            seen.append(super().__call__(images))
            return seen[-1]

    t = BatchTransform(REFERENCE_TRAIN, meta(), "train_transforms")
    spy = Spy(REFERENCE_TRAIN, meta(), "train_transforms")

    p = tiny_protocol("fixed", lr=0.05, lr_grid=None, epochs=2, batch_size=4, test_interval=1)
    train, test = toy_split(8, 0), toy_split(6, 1)
    group = RunGroup(p, 3, train, test, None, (3, 8, 8), num_classes=3)
    first = train_one(replace(group, transform=spy), 0.05)
    assert len(seen) == 2 * 2 and all(s.shape == (4, 3, 8, 8) for s in seen)
    again = train_one(replace(group, transform=t), 0.05)
    assert again.curve == first.curve
    plain = train_one(group, 0.05)
    assert plain.curve != first.curve


def test_mode_m_teachers_label_the_transformed_images(monkeypatch):
    seen = []

    class Teacher(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(len(x), 3)

    labels = {
        "soft_label_mode": "M",
        "label_source": "teachers",
        "soft_label_criterion": "kl",
        "loss_fn_kwargs": {"temperature": 1.0, "scale_loss": False},
    }
    p = tiny_protocol("fixed", labels, lr=0.01, lr_grid=None, epochs=1, batch_size=8)
    flip = BatchTransform([item("RandomHorizontalFlip", p=1.0)], meta(), "train_transforms")
    train = toy_split(8, 0)
    test = toy_split(3, 1)
    group = RunGroup(p, 0, train, test, None, (3, 8, 8), 3, teachers=Teacher(), transform=flip)
    train_one(group, 0.01)
    got = sorted(map(tuple, seen[0].flatten(1).tolist()))
    want = sorted(map(tuple, train.images.flip(-1).flatten(1).tolist()))
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-6)


# --- the train stage: cached and streamed test splits ---------------------------------------


# The tiny tree's statistics, as a reference-style list would write them.
TREE_NORMALIZE = item("Normalize", mean=TREE_MEAN, std=TREE_STD)


def test_train_stage_applies_the_lists_alike_to_cached_and_streamed_data(
    both, tmp_path, one_thread
):
    crop = item("RandomCrop", size=8, padding=2)
    lists = {
        "train_transforms": [crop, item("ToTensor"), TREE_NORMALIZE],
        "test_transforms": [item("CenterCrop", size=6), item("Pad", padding=1)],
    }
    protocol = tiny_protocol("fixed", batch_size=5, test_interval=1, lr=0.05, lr_grid=None, **lists)
    cached = run_train_stage(*both["cached"][:2], tmp_path / "c.json", protocol, workers=0)
    streamed = run_train_stage(*both["streamed"][:2], tmp_path / "s.json", protocol, workers=1)
    # the same seeded crops, the same framed test images: the same run
    assert streamed["runs"][0]["curve"] == cached["runs"][0]["curve"]
    assert cached["protocol"]["train_transforms"] == lists["train_transforms"]  # recorded
    plain = tiny_protocol("fixed", batch_size=5, test_interval=1, lr=0.05, lr_grid=None)
    without = run_train_stage(*both["cached"][:2], tmp_path / "p.json", plain, workers=0)
    assert without["runs"][0]["curve"] != cached["runs"][0]["curve"]


def test_train_stage_reports_a_bad_list_before_training(both, tmp_path):
    wrong = item("Normalize", mean=[0.1] * 3, std=[0.2] * 3)
    protocol = tiny_protocol("fixed", lr=0.05, lr_grid=None, train_transforms=[wrong])
    with pytest.raises(ConfigError, match=r"train_transforms\[0\] \(Normalize\)"):
        run_train_stage(*both["cached"][:2], tmp_path / "bad.json", protocol, workers=0)
    assert not (tmp_path / "bad.json").exists()


# --- the plan --------------------------------------------------------------------------------


@pytest.fixture
def config() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, SCHEMA)
    return copy.deepcopy(cfg)


def with_lists(config: dict, protocol: str, train=None, test=None) -> dict:
    p = config["protocols"][protocol]
    p["train_transforms"], p["test_transforms"] = train, test
    validate(config, SCHEMA)
    return config


FLIP = [item("RandomHorizontalFlip", p=0.5)]
FRAME = [item("CenterCrop", size=6), item("Pad", padding=1)]


def test_protocols_without_lists_keep_their_keys(config):
    protocol = config["protocols"]["digits-dsa"]
    before = protocol_key(run_protocol(protocol, "grid"))
    assert "train_transforms" not in run_protocol({**protocol, "train_transforms": None}, "grid")
    assert protocol_key(run_protocol({**protocol, "test_transforms": None}, "grid")) == before
    assert protocol_key(run_protocol({**protocol, "train_transforms": FLIP}, "grid")) != before


def test_every_term_of_a_score_is_tested_with_the_protocols_test_list(config):
    with_lists(config, "digits-dsa", train=FLIP, test=FRAME)
    with_lists(config, "digits-kd", train=FLIP, test=FRAME)
    plan = build_plan(config)
    for metric in ("lrs_hard", "lrs_soft", "ars"):
        terms = plan.scores[("random", metric)]["protocols"]
        assert all(t["test_transforms"] == FRAME for t in terms.values()), metric
    hard = plan.scores[("random", "lrs_hard")]["protocols"]
    assert hard["syn-any"]["train_transforms"] == FLIP
    assert "train_transforms" not in hard["real-hard"]  # its own recipe: none here
    ars = plan.scores[("random", "ars")]["protocols"]
    assert ars["syn-aug"]["train_transforms"] == FLIP
    # "without augmentation" means without the per-image transforms too
    assert "train_transforms" not in ars["syn-naug"] and "train_transforms" not in ars["rdm-naug"]


def test_syn_hard_without_use_aug_for_hard_keeps_the_train_list(config):
    # The reference applies custom_train_trans in every term and use_aug_for_hard only
    # switches the batch augmentation: the transforms are preprocessing.
    with_lists(config, "digits-kd", train=FLIP)
    settings = config["methods"]["random"]["metrics"]["lrs_soft"]
    settings["use_aug_for_hard"] = True
    kept = build_plan(config).scores[("random", "lrs_soft")]["protocols"]["syn-hard"]
    settings["use_aug_for_hard"] = False
    plain = build_plan(config).scores[("random", "lrs_soft")]["protocols"]["syn-hard"]
    assert kept["train_transforms"] == FLIP and plain["train_transforms"] == FLIP
    assert kept["augmentation"] == "dsa" and plain["augmentation"] == "none"


def test_ars_may_compare_runs_with_and_without_the_train_list_alone(config):
    protocol = config["protocols"]["digits-kd"]
    protocol["augmentation"], protocol["aug_params"] = "none", {}
    with pytest.raises(ConfigError, match="set an augmentation or train_transforms"):
        build_plan(config)
    with_lists(config, "digits-kd", train=FLIP)
    ars = build_plan(config).scores[("random", "ars")]["protocols"]
    assert ars["syn-aug"]["train_transforms"] == FLIP
    assert "train_transforms" not in ars["syn-naug"]


def test_a_trained_teacher_is_the_real_hard_run_tested_the_same_way(config):
    with_lists(config, "digits-kd", test=FRAME)
    plan = build_plan(config)
    spec = plan.scores[("random", "lrs_soft")]
    teacher = spec["protocols"]["syn-any"]["teachers"][0]
    assert teacher["source"] == "trained"
    assert teacher["key"] == spec["protocols"]["real-hard"]["key"]


def test_real_protocols_may_train_with_a_list_but_not_test_with_one(config):
    config["real_protocols"]["digits-ConvNet-3"]["train_transforms"] = FLIP
    validate(config, SCHEMA)
    real = build_plan(config).scores[("random", "lrs_hard")]["protocols"]["real-hard"]
    assert real["train_transforms"] == FLIP
    config["real_protocols"]["digits-ConvNet-3"]["test_transforms"] = FRAME
    with pytest.raises(ConfigError, match=r"real_protocols\.digits-ConvNet-3\.test_transforms"):
        build_plan(config)


def test_config_errors_name_the_protocol_key(config):
    with_lists(config, "digits-dsa", train=[item("RandomFlop")])
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa: train_transforms\[0\]"):
        build_plan(config)
    config["protocols"]["digits-dsa"]["train_transforms"] = [{"name": "RandomCrop", "arg": {}}]
    with pytest.raises(WorkflowError, match="validating config"):
        validate(config, SCHEMA)


def test_a_zca_dataset_refuses_the_lists_before_any_job(config):
    with_lists(config, "digits-dsa", train=FLIP)
    config["datasets"]["digits"]["zca"] = True
    with pytest.raises(ConfigError, match=r"protocols\.digits-dsa\.train_transforms.*ZCA"):
        build_plan(config)
    with_lists(config, "digits-dsa")
    config["real_protocols"]["digits-ConvNet-3"]["train_transforms"] = FLIP
    with pytest.raises(ConfigError, match=r"real_protocols\.digits-ConvNet-3\.train_transforms"):
        build_plan(config)
