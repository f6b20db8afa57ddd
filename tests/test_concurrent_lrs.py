"""The LR grid of a group trained together (`engine.train_together`) against one run at a
time: the same curves, selection, kept weights and log lines, under augmentation,
train_transforms, soft labels in modes S and M and a model that draws from the global
RNG. On the CPU the two are bit-identical; the CUDA streams path is checked where a GPU
is present."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from helpers import tiny_protocol

from ddrank_steps.data.training_inputs import DatasetMeta
from ddrank_steps.training import engine, run_steps
from ddrank_steps.training.engine import RunGroup, Split, concurrent_lrs, train_group
from ddrank_steps.transforms.batches import BatchTransform

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (3, 8, 8)
CLASSES = 3
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
# the reference's CIFAR list at the toy size: random crops and flips drawn per image
TRAIN_TRANSFORMS = yaml.safe_load(
    """
- {name: RandomCrop, args: {size: 8, padding: 2}}
- {name: RandomHorizontalFlip, args: {p: 0.5}}
- {name: ToTensor}
- {name: Normalize, args: {mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010]}}
"""
)
# the last LR diverges, so the bookkeeping of a broken run is compared too
LRS = [0.01, 0.05, 1e6]


def toy(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = 0.5 * torch.randn(n, *SHAPE, generator=g)
    for k in range(CLASSES):
        images[labels == k, k] += 1.0  # each class brighter in its own channel
    return Split(images, labels)


TRAIN, TEST = toy(24, seed=0), toy(9, seed=1)


def meta() -> DatasetMeta:
    return DatasetMeta(
        name="toy",
        num_classes=CLASSES,
        channels=3,
        height=8,
        width=8,
        mean=MEAN,
        std=STD,
        max_value=255.0,
        classes=["a", "b", "c"],
    )


def protocol(labels: dict | None = None, **changes) -> dict:
    p = tiny_protocol("grid", labels, epochs=3, test_interval=1, **changes)
    p["lr_grid"] = LRS
    return p


def soft_labels(mode: str) -> dict:
    return {
        "soft_label_mode": mode,
        "label_source": "teachers" if mode == "M" else "set",
        "soft_label_criterion": "kl",
        "loss_fn_kwargs": {"temperature": 1.0, "scale_loss": False},
    }


class Teacher(torch.nn.Module):
    """A fixed teacher whose logits depend on the (augmented) batch it sees."""

    def forward(self, x):
        means = x.mean(dim=(2, 3))  # one logit per channel, hence per class
        return 3.0 * means


def make_group(p: dict, **changes) -> RunGroup:
    fields = {
        "protocol": p,
        "seed": 3,
        "train": TRAIN,
        "test": TEST,
        "val": None,
        "shape": SHAPE,
        "num_classes": CLASSES,
        "keep_state": True,
    }
    return RunGroup(**{**fields, **changes})


def both_ways(make, caplog=None):
    """(results, best, log lines) one at a time, then together; `make` builds a fresh
    group each time (a transform keeps its stream between runs)."""
    out = []
    for concurrent in (False, True):
        if caplog is not None:
            caplog.clear()
        results, best = train_group(make(), LRS, show_progress=False, concurrent=concurrent)
        lines = [r.getMessage() for r in caplog.records] if caplog is not None else []
        out.append((results, best, lines))
    return out


def assert_same(sequential, together):
    (seq, seq_best, _), (tog, tog_best, _) = sequential, together
    assert tog_best == seq_best
    assert [r.lr for r in tog] == [r.lr for r in seq]
    for a, b in zip(seq, tog, strict=True):
        assert b.curve == a.curve  # bit for bit on the CPU: the same arithmetic in turn
        assert (b.selected_epoch, b.acc, b.val_acc) == (a.selected_epoch, a.acc, a.val_acc)
        assert b.diverged_at == a.diverged_at
        assert (a.state is None) == (b.state is None)
        if a.state is not None:
            assert a.state.keys() == b.state.keys()
            assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


@pytest.mark.parametrize("augmentation", ["dsa", "mixup"])
def test_together_equals_one_at_a_time_with_augmentation_and_train_transforms(augmentation):
    p = protocol(augmentation=augmentation)

    def make():
        return make_group(p, transform=BatchTransform(TRAIN_TRANSFORMS, meta(), "train"))

    sequential, together = both_ways(make)
    assert_same(sequential, together)
    results = sequential[0]
    assert results[-1].diverged_at is not None and results[0].diverged_at is None
    assert len({r.curve[-1]["train_loss"] for r in results}) == len(LRS)  # the LRs differ


def test_together_equals_one_at_a_time_in_bf16():
    p = protocol(augmentation="dsa")
    p["precision"] = "bf16"
    assert_same(*both_ways(lambda: make_group(p)))


def test_together_equals_one_at_a_time_with_stored_soft_labels_mode_s():
    p = protocol(soft_labels("S"), augmentation="mixup")
    g = torch.Generator().manual_seed(5)
    train = Split(TRAIN.images, TRAIN.labels, torch.randn(len(TRAIN.labels), CLASSES, generator=g))
    assert_same(*both_ways(lambda: make_group(p, train=train)))


def test_together_equals_one_at_a_time_with_teachers_mode_m():
    p = protocol(soft_labels("M"), augmentation="dsa")
    assert_same(*both_ways(lambda: make_group(p, teachers=Teacher())))


def test_each_run_keeps_its_own_global_rng_draws(monkeypatch):
    """Dropout draws from the global RNG: interleaved runs must still draw what each draws
    alone, and the test would fail without the lanes' per-run RNG state."""
    build = run_steps.build_model

    def with_dropout(*args, **kwargs):
        return torch.nn.Sequential(torch.nn.Dropout(0.3), build(*args, **kwargs))

    monkeypatch.setattr(run_steps, "build_model", with_dropout)
    p = protocol()
    assert_same(*both_ways(lambda: make_group(p)))


def test_log_lines_and_progress_are_those_of_one_at_a_time(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="ddrank.engine")
    sequential, together = both_ways(lambda: make_group(protocol()), caplog)

    def per_run(lines):  # the seconds differ; the rest of each line must not
        return [line.split(" (")[0] for line in lines if line.startswith("lr ")]

    assert per_run(together[2]) == per_run(sequential[2])
    assert len(per_run(sequential[2])) == len(LRS) + 1  # and the diverged LR's warning
    assert any("train together" in line for line in together[2])

    updates = []

    class Bar:
        def update(self, n):
            updates.append(n)

    engine.train_together(make_group(protocol()), LRS, Bar())
    assert sum(updates) == len(LRS) * protocol()["epochs"]


def test_one_lr_or_ddp_trains_one_at_a_time(monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "train_together", lambda *a, **k: calls.append(a))
    train_group(make_group(protocol()), [0.01], show_progress=False, concurrent=True)
    monkeypatch.setattr(engine.distributed, "rank_world", lambda: (0, 2))
    assert not concurrent_lrs("on", torch.device("cuda"))
    assert calls == []
    monkeypatch.undo()
    monkeypatch.setattr(engine.distributed, "rank_world", lambda: (0, 2))
    with pytest.raises(ValueError, match="only in one process"):
        engine.train_together(make_group(protocol()), LRS)


def test_the_setting_decides_by_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not concurrent_lrs("auto", cpu)
    assert concurrent_lrs("auto", cuda)
    assert not concurrent_lrs("auto", cuda, streamed=True)
    assert concurrent_lrs("on", cpu)
    assert not concurrent_lrs("off", cuda)
    with pytest.raises(ValueError, match="concurrent_lrs is 'yes'; valid values: auto, on, off"):
        concurrent_lrs("yes", cpu)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA streams path needs a GPU")
def test_together_on_cuda_streams_equals_one_at_a_time():
    device = torch.device("cuda")
    p = protocol(augmentation="dsa")
    on = {"train": Split(TRAIN.images.to(device), TRAIN.labels.to(device))}
    on["test"] = Split(TEST.images.to(device), TEST.labels.to(device))
    torch.backends.cudnn.deterministic, before = True, torch.backends.cudnn.deterministic
    try:
        (seq, seq_best, _), (tog, tog_best, _) = both_ways(lambda: make_group(p, **on))
    finally:
        torch.backends.cudnn.deterministic = before
    assert tog_best == seq_best
    for a, b in zip(seq, tog, strict=True):
        assert [q["test"] for q in b.curve] == [q["test"] for q in a.curve]
        for qa, qb in zip(a.curve, b.curve, strict=True):
            if qa["train_loss"] is None:
                assert qb["train_loss"] is None
            else:
                assert qb["train_loss"] == pytest.approx(qa["train_loss"], rel=1e-5, abs=1e-6)
