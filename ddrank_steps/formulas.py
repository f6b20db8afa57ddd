"""The score formulas of DD-Ranking, on accuracies given as fractions in [0, 1].

HLR = Acc(real, hard) − Acc(syn, hard)
IOR = Acc(syn, any) − Acc(rdm, any)
LRS = 100 · (e^α − e^−1) / (e − e^−1),  α = w·IOR − (1 − w)·HLR
ARS = the same normalisation of β = γ·(syn_aug − rdm_aug) + (1 − γ)·(syn_naug − rdm_naug)

With fractions, α and β lie in [−1, 1] and LRS/ARS in [0, 100]. (The reference feeds
percentage points into exp(), which pins most methods near −0.157 or blows up.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

E_MINUS = math.exp(-1.0)
SPAN = math.e - E_MINUS


def _check_fraction(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} = {value} is not an accuracy fraction in [0, 1]")


def normalise(x: float) -> float:
    """Map x ∈ [−1, 1] onto [0, 100] with the exponential of DD-Ranking."""
    return 100.0 * (math.exp(x) - E_MINUS) / SPAN


def hlr(real_hard: float, syn_hard: float) -> float:
    _check_fraction("real-hard", real_hard)
    _check_fraction("syn-hard", syn_hard)
    return real_hard - syn_hard


def ior(syn_any: float, rdm_any: float) -> float:
    _check_fraction("syn-any", syn_any)
    _check_fraction("rdm-any", rdm_any)
    return syn_any - rdm_any


def lrs_alpha(hlr_value: float, ior_value: float, weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"LRS weight w = {weight} is not in [0, 1]")
    return weight * ior_value - (1.0 - weight) * hlr_value


def lrs(hlr_value: float, ior_value: float, weight: float = 0.5) -> float:
    return normalise(lrs_alpha(hlr_value, ior_value, weight))


def ars_beta(syn_aug: float, rdm_aug: float, syn_naug: float, rdm_naug: float, gamma: float):
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"ARS weight γ = {gamma} is not in [0, 1]")
    for name, v in (("syn-aug", syn_aug), ("rdm-aug", rdm_aug), ("syn-naug", syn_naug)):
        _check_fraction(name, v)
    _check_fraction("rdm-naug", rdm_naug)
    return gamma * (syn_aug - rdm_aug) + (1.0 - gamma) * (syn_naug - rdm_naug)


def ars(syn_aug, rdm_aug, syn_naug, rdm_naug, gamma: float = 0.5) -> float:
    return normalise(ars_beta(syn_aug, rdm_aug, syn_naug, rdm_naug, gamma))


def mean_std(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, population std (ddof = 0, as the reference aggregates rounds) and the standard
    error of the mean (sample std, ddof = 1, over √rounds; None from one round, which says
    nothing about spread). The std describes the rounds; the se says how far the mean may
    be from what many more rounds would give, so two methods whose means differ by less
    than about two se's are not separated by this many rounds."""
    n = len(values)
    if n == 0:
        raise ValueError("no rounds to aggregate")
    mean = sum(values) / n
    squares = sum((v - mean) ** 2 for v in values)
    se = math.sqrt(squares / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "std": math.sqrt(squares / n), "se": se}


def as_float(value) -> float:
    """A number read from a result file as float; NaN for anything else (null, a string,
    a bool), so an odd or old file gives a gap in a table or figure instead of a crash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)
