"""The score formulas (ddrank_steps.formulas) against values worked out by hand.

Constants used in the comments: e = 2.718282, e⁻¹ = 0.367879, e − e⁻¹ = 2.350402.
"""

from __future__ import annotations

import math

import pytest

from ddrank_steps.formulas import ars, ars_beta, hlr, ior, lrs, lrs_alpha, mean_std, normalise


def test_normalise_minus_one_is_zero():
    # 100·(e⁻¹ − e⁻¹)/(e − e⁻¹) = 0
    assert normalise(-1.0) == pytest.approx(0.0, abs=1e-12)


def test_normalise_one_is_hundred():
    # 100·(e − e⁻¹)/(e − e⁻¹) = 100
    assert normalise(1.0) == pytest.approx(100.0, abs=1e-12)


def test_normalise_zero_matches_hand_value():
    # 100·(1 − 0.367879)/2.350402 = 100·0.632121/2.350402 = 26.894
    assert normalise(0.0) == pytest.approx(26.894, abs=1e-3)


def test_hlr_and_ior_are_plain_differences_of_fractions():
    # HLR = 0.90 − 0.50 = 0.40; IOR = 0.60 − 0.50 = 0.10
    assert hlr(0.90, 0.50) == pytest.approx(0.40)
    assert ior(0.60, 0.50) == pytest.approx(0.10)


def test_lrs_alpha_of_reference_worked_case():
    # α = w·IOR − (1 − w)·HLR = 0.5·0.10 − 0.5·0.40 = 0.05 − 0.20 = −0.15
    assert lrs_alpha(0.40, 0.10, 0.5) == pytest.approx(-0.15)


def test_lrs_of_reference_worked_case():
    # e^−0.15 = 0.860708; (0.860708 − 0.367879)/2.350402 = 0.492829/2.350402 = 0.209678 → 20.97
    assert lrs(0.40, 0.10, 0.5) == pytest.approx(20.97, abs=1e-2)


def test_lrs_default_weight_is_one_half():
    assert lrs(0.40, 0.10) == pytest.approx(lrs(0.40, 0.10, 0.5))


def test_lrs_weight_one_uses_only_ior():
    # α = 1·0.10 − 0·0.40 = 0.10; e^0.1 = 1.105171; (1.105171 − 0.367879)/2.350402 = 0.313688
    assert lrs(0.40, 0.10, 1.0) == pytest.approx(31.37, abs=1e-2)


def test_lrs_weight_zero_uses_only_hlr():
    # α = 0·0.10 − 1·0.40 = −0.40; e^−0.4 = 0.670320; (0.670320 − 0.367879)/2.350402 = 0.128676
    assert lrs(0.40, 0.10, 0.0) == pytest.approx(12.87, abs=1e-2)


def test_ars_beta_weights_aug_and_naug_gaps_by_gamma():
    # β = 0.3·(0.60 − 0.50) + 0.7·(0.40 − 0.45) = 0.03 − 0.035 = −0.005
    assert ars_beta(0.60, 0.50, 0.40, 0.45, gamma=0.3) == pytest.approx(-0.005)


def test_ars_with_gamma_matches_hand_value():
    # β = −0.005; e^−0.005 = 0.995012; (0.995012 − 0.367879)/2.350402 = 0.266820 → 26.68
    assert ars(0.60, 0.50, 0.40, 0.45, gamma=0.3) == pytest.approx(26.68, abs=1e-2)


def test_ars_gamma_one_uses_only_the_augmented_gap():
    # β = 1·(0.60 − 0.50) + 0·(…) = 0.10 → same as normalise(0.10) = 31.37
    assert ars(0.60, 0.50, 0.40, 0.45, gamma=1.0) == pytest.approx(31.37, abs=1e-2)


def test_ars_gamma_zero_uses_only_the_unaugmented_gap():
    # β = 0·(…) + 1·(0.40 − 0.45) = −0.05; e^−0.05 = 0.951229; (0.951229 − 0.367879)/2.350402
    # = 0.248191 → 24.82
    assert ars(0.60, 0.50, 0.40, 0.45, gamma=0.0) == pytest.approx(24.82, abs=1e-2)


def test_mean_std_uses_population_std():
    # mean = 10/4 = 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; 5/4 = 1.25 (ddof = 0)
    out = mean_std([1.0, 2.0, 3.0, 4.0])
    assert out["mean"] == pytest.approx(2.5)
    assert out["std"] == pytest.approx(math.sqrt(1.25))


def test_mean_std_of_one_round_has_zero_std_and_no_standard_error():
    assert mean_std([0.7]) == {"mean": 0.7, "std": 0.0, "se": None}


def test_standard_error_uses_the_sample_std():
    # sample variance 5/3; se = sqrt(5/3 / 4)
    assert mean_std([1.0, 2.0, 3.0, 4.0])["se"] == pytest.approx(math.sqrt(5 / 12))


def test_mean_std_of_no_rounds_raises():
    with pytest.raises(ValueError, match="no rounds"):
        mean_std([])


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: hlr(95.0, 0.5), "real-hard"),
        (lambda: hlr(0.9, 50.0), "syn-hard"),
        (lambda: ior(0.5, -0.1), "rdm-any"),
        (lambda: ars(0.6, 0.5, 0.4, 45.0), "rdm-naug"),
        (lambda: ars(60.0, 0.5, 0.4, 0.45), "syn-aug"),
        (lambda: hlr(float("nan"), 0.5), "real-hard"),
    ],
)
def test_accuracy_outside_unit_interval_raises_naming_the_term(call, name):
    with pytest.raises(ValueError, match=rf"{name} = .* not an accuracy fraction in \[0, 1\]"):
        call()


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_lrs_weight_outside_unit_interval_raises(weight):
    with pytest.raises(ValueError, match=r"LRS weight w = .* not in \[0, 1\]"):
        lrs(0.4, 0.1, weight)


@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_ars_gamma_outside_unit_interval_raises(gamma):
    with pytest.raises(ValueError, match=r"ARS weight γ = .* not in \[0, 1\]"):
        ars(0.6, 0.5, 0.4, 0.45, gamma=gamma)
