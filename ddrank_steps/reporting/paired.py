"""Paired comparison of two methods' scores over the rounds they share.

Every method of a leaderboard group trains in the same rounds: the same seeds, the same
random subsets, the same real-hard runs. So the difference of two methods' scores in one
round cancels what that round's draw did to both, and the differences over rounds are the
sample to test. The test is a two-sided paired t-test at `ALPHA`, and its 95 % interval
of the mean difference (mean ± t(0.975, n − 1) · sd / √n, sd with ddof = 1):

- a t-test rather than a sign test or a bootstrap because rounds are few: with 3 rounds a
  sign test can never reject (its smallest two-sided p is 0.25) and a bootstrap of 3
  values has 10 distinct resamples; the t-test is exact when the differences are
  normal, which averages of many test images make a fair assumption;
- it needs at least 2 shared rounds (1 degree of freedom); 5 (the reference's
  `num_eval`) or more make it meaningful, since with 2 or 3 rounds only large, consistent
  gaps are separated (t(0.975, 1) = 12.7, t(0.975, 2) = 4.3);
- rounds are paired by seed; a round whose score is missing or not finite (NaN from a
  diverged run) in either method is left out, and the count says how many remain;
- all differences equal: separated when they are not zero (no spread, a consistent gap),
  tied when they are (identical scores).

Only adjacent pairs of a ranking are tested, each answering its own question (does #k
beat #k+1?), without a multiple-comparison correction: a "separated" is per pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
MIN_ROUNDS = 2


@dataclass(frozen=True)
class PairedComparison:
    rounds: int  # rounds paired (shared seeds with a finite score in both)
    diff_mean: float  # mean of upper − lower over those rounds
    diff_sd: float  # sample std (ddof = 1) of the differences; NaN below 2 rounds
    ci_low: float  # 95 % interval of the mean difference
    ci_high: float
    p: float  # two-sided p of the paired t-test; NaN when not tested
    separated: bool  # the rounds support the order (p < ALPHA)
    note: str = ""  # why it was not tested, when it was not


def compare(upper: dict[int, float], lower: dict[int, float]) -> PairedComparison:
    """Test `upper` − `lower` (each a round's seed -> score) over their shared rounds."""
    seeds = sorted(s for s in upper.keys() & lower.keys() if _finite(upper[s], lower[s]))
    diffs = [upper[s] - lower[s] for s in seeds]
    n = len(diffs)
    nan = math.nan
    if n == 0:
        return PairedComparison(0, nan, nan, nan, nan, nan, False, "no shared round")
    mean = sum(diffs) / n
    if n < MIN_ROUNDS:
        note = f"{n} shared round: no test (needs {MIN_ROUNDS})"
        return PairedComparison(n, mean, nan, nan, nan, nan, False, note)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        # identical differences: a consistent gap, or the same scores
        p = 0.0 if mean != 0.0 else 1.0
        return PairedComparison(n, mean, 0.0, mean, mean, p, mean != 0.0)
    from scipy import stats  # the t distribution (scipy comes with scikit-learn)

    se = sd / math.sqrt(n)
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    half = float(stats.t.ppf(1.0 - ALPHA / 2.0, df=n - 1)) * se
    return PairedComparison(n, mean, sd, mean - half, mean + half, p, p < ALPHA)


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)
