"""What LRS-hard and LRS-soft share: the per-round score from their four terms."""

from __future__ import annotations

from ddrank_steps import formulas

TERMS = ("real-hard", "syn-hard", "syn-any", "rdm-any")
QUANTITIES = ("lrs", "hlr", "ior")


def compute(acc: dict[str, float], settings: dict) -> dict[str, float]:
    """HLR from the hard terms, IOR under the method's own recipe, LRS from both."""
    hlr = formulas.hlr(acc["real-hard"], acc["syn-hard"])
    ior = formulas.ior(acc["syn-any"], acc["rdm-any"])
    alpha = formulas.lrs_alpha(hlr, ior, settings["weight"])
    return {"hlr": hlr, "ior": ior, "alpha": alpha, "lrs": formulas.normalise(alpha)}
