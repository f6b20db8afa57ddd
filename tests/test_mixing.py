"""Mixup and Cutmix: the image formulas, label mixing (loss = the λ-weighted sum), the
probability, seeded reproducibility, and strict parameters in both spellings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddrank_steps.augment import (
    AUGMENTATIONS,
    Cutmix,
    Mix,
    Mixup,
    build_augmentation,
    mixed_loss,
)
from ddrank_steps.augment import cutmix as C
from ddrank_steps.augment.mixing import MixParams, draw_batch
from ddrank_steps.errors import ConfigError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(n: int = 8, c: int = 2, h: int = 10, w: int = 12) -> torch.Tensor:
    # Distinct values everywhere, so a pixel tells which image it came from.
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w)


AUGS = [Mixup, Cutmix]


# --- images -------------------------------------------------------------------------------------


def test_mixup_is_the_convex_combination_with_the_permuted_batch():
    x = torch.randn(8, 3, 6, 6, generator=gen(1))
    out, mix = Mixup({"alpha": 0.8})(x, gen(2))
    assert isinstance(mix, Mix) and 0.0 < mix.lam < 1.0
    assert sorted(mix.perm.tolist()) == list(range(8))
    assert torch.allclose(out, mix.lam * x + (1 - mix.lam) * x[mix.perm])


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_pastes_one_box_from_the_partner_and_lam_is_the_kept_share(seed):
    x = batch()
    out, mix = Cutmix({"alpha": 1.0})(x, gen(seed))
    from_partner = out == x[mix.perm]
    from_self = out == x
    assert bool((from_partner | from_self).all())
    moved = mix.perm != torch.arange(8)  # images paired with themselves cannot show the box
    box = from_partner[moved][0, 0] & ~from_self[moved][0, 0]  # (H, W) mask of pasted pixels
    assert bool((from_partner[moved] & ~from_self[moved] == box).all())  # same box for all
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    if box.any():
        assert box.sum() == len(rows) * len(cols)  # a rectangle
    assert mix.lam == pytest.approx(1 - box.float().mean().item())


def test_cutmix_box_follows_the_reference_and_clips_at_the_border():
    # side int(32 * sqrt(0.75)) = 27, half 13: rows [16 - 13, 16 + 13) = [3, 29)
    assert C.cutmix_box(32, 32, 0.25, 16, 16) == (3, 29, 3, 29)
    # at a corner the box is cut to [0, 13) x [0, 13): the kept share is not 0.25 any more
    box = C.cutmix_box(32, 32, 0.25, 0, 0)
    assert box == (0, 13, 0, 13)
    assert C.kept_share(32, 32, box) == pytest.approx(1 - 169 / 1024)


def test_cutmix_does_not_modify_its_input():
    x = batch()
    before = x.clone()
    Cutmix(None)(x, gen(0))
    assert torch.equal(x, before)


# --- labels: the loss is the λ-weighted sum -------------------------------------------------------


@pytest.mark.parametrize("aug", AUGS)
def test_hard_label_loss_is_the_lambda_weighted_sum(aug):
    x = torch.randn(8, 3, 8, 8, generator=gen(3))
    y = torch.randint(0, 5, (8,), generator=gen(4))
    logits = torch.randn(8, 5, generator=gen(5))
    _, mix = aug(None)(x, gen(6))
    expected = mix.lam * F.cross_entropy(logits, y) + (1 - mix.lam) * F.cross_entropy(
        logits, y[mix.perm]
    )
    assert torch.allclose(mixed_loss(F.cross_entropy, logits, y, mix), expected)
    # ... which is cross-entropy against the mixed one-hot label: the labels are mixed too
    mixed_target = mix.lam * F.one_hot(y, 5) + (1 - mix.lam) * F.one_hot(y[mix.perm], 5)
    assert torch.allclose(expected, F.cross_entropy(logits, mixed_target.float()))


@pytest.mark.parametrize("aug", AUGS)
def test_mode_s_soft_labels_are_mixed_with_their_images(aug):
    # Mode S: each stored image has its own soft label; a mixed image gets the mixed label.
    x = torch.randn(6, 1, 8, 8, generator=gen(7))
    soft = torch.softmax(torch.randn(6, 4, generator=gen(8)), 1)
    logits = torch.randn(6, 4, generator=gen(9))
    _, mix = aug(None)(x, gen(10))

    def soft_ce(out, target):
        return -(target * torch.log_softmax(out, 1)).sum(1).mean()

    mixed_target = mix.lam * soft + (1 - mix.lam) * soft[mix.perm]
    assert torch.allclose(mixed_loss(soft_ce, logits, soft, mix), soft_ce(logits, mixed_target))


def test_no_mix_is_the_plain_loss():
    logits, y = torch.randn(4, 3, generator=gen(0)), torch.tensor([0, 1, 2, 0])
    assert torch.equal(mixed_loss(F.cross_entropy, logits, y, None), F.cross_entropy(logits, y))


# --- probability, randomness ------------------------------------------------------------------


@pytest.mark.parametrize("aug", AUGS)
def test_probability_zero_returns_the_batch_unchanged(aug):
    x = torch.randn(4, 1, 8, 8, generator=gen(0))
    out, mix = aug({"p": 0.0})(x, gen(1))
    assert out is x and mix is None


@pytest.mark.parametrize("aug", AUGS)
def test_probability_half_mixes_about_half_the_batches(aug):
    x = torch.randn(4, 1, 8, 8, generator=gen(0))
    g = gen(1)
    f = aug({"p": 0.5})
    mixed = sum(f(x, g)[1] is not None for _ in range(400))
    assert 160 < mixed < 240


@pytest.mark.parametrize("aug", AUGS)
def test_same_seed_same_result_other_seed_differs(aug):
    x = torch.randn(8, 3, 16, 16, generator=gen(0))
    a, ma = aug(None)(x, gen(5))
    b, mb = aug(None)(x, gen(5))
    c, _ = aug(None)(x, gen(6))
    assert torch.equal(a, b) and torch.equal(ma.perm, mb.perm) and ma.lam == mb.lam
    assert not torch.equal(a, c)


@pytest.mark.parametrize("aug", AUGS)
def test_global_rng_is_not_used(aug):
    x = torch.randn(8, 3, 16, 16, generator=gen(0))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    aug(None)(x, gen(1))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    g = gen(0)
    params = MixParams(alpha)
    lam = torch.tensor([draw_batch(params, g, torch.device("cpu")).lam for _ in range(3000)])
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert lam.mean().item() == pytest.approx(0.5, abs=0.03)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.12)


@pytest.mark.parametrize("aug", AUGS)
def test_wrong_generator_device_or_shape_is_rejected(aug):
    with pytest.raises(ValueError, match="float images of shape"):
        aug(None)(torch.zeros(4, 8, 8), gen(0))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator on the images' device"):
            aug(None)(torch.zeros(2, 1, 4, 4, device="cuda"), gen(0))


# --- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ours", "reference"),
    [
        ("mixup", {"alpha": 0.5, "p": 0.7}, {"lambda": 0.5, "mixup_p": 0.7}),
        ("cutmix", {"alpha": 2.0, "p": 0.3}, {"beta": 2.0, "cutmix_p": 0.3}),
    ],
)
def test_both_spellings_are_accepted_and_equal(name, ours, reference):
    assert build_augmentation(name, ours).params == build_augmentation(name, reference).params


def test_defaults_are_the_references():
    assert Mixup(None).params == MixParams(0.8, 1.0)
    assert Cutmix({}).params == MixParams(1.0, 1.0)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("mixup", {"beta": 1.0}, r"Mixup param 'beta' is unknown; valid keys: alpha, lambda"),
        ("cutmix", {"lambda": 1.0}, r"Cutmix param 'lambda' is unknown; valid keys: alpha, beta"),
        ("mixup", {"alpha": 1.0, "lambda": 2.0}, r"conflicts with 'alpha'"),
        ("mixup", {"lambda": 0}, r"'lambda' must be a number > 0"),
        ("cutmix", {"cutmix_p": 1.5}, r"'cutmix_p' must be a probability in \[0, 1\]"),
        ("cutmix", {"p": True}, r"'p' must be a probability"),
        ("mixup", [("alpha", 1.0)], r"Mixup params must be a mapping"),
    ],
)
def test_bad_params_are_clear_errors(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_augmentation(name, params)


def test_registry_and_zca_hint():
    assert {"dsa", "mixup", "cutmix"} <= set(AUGMENTATIONS)
    assert isinstance(build_augmentation("Mixup", None), Mixup)
    with pytest.raises(ConfigError, match=r"ZCA whitening is a dataset-level transform"):
        build_augmentation("zca", {})
