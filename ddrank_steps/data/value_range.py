"""Whether a float set is in its dataset's normalised space: every set of a run must be
(the random subsets and the test split are), and a set that is not trains a broken net
whose accuracy would be scored as the method's.

Normalising pixels p in [0, 1] with the dataset's per-channel mean and std gives values in
[(0 - mean) / std, (1 - mean) / std]: a *pixel range* 1 / std wide. A distilled set is
optimised, so its values may leave that interval, but not by much. Judged per channel on
the 0.1 % and 99.9 % quantiles (a few stray pixels do not count):

- raw pixels saved as floats (whole numbers from 0 up to 16, 255, ...: digits' 0-16
  scale, 0-255) or values more than `FAR` pixel ranges beyond the interval (a tensor
  scaled by 300, raw pixels with noise): an error, with the fix (normalise with the mean
  and std, both given);
- values more than `BEYOND` pixel ranges beyond it, or values in [0, 1] where the
  normalised space is mostly negative (pixels that were never normalised?): ambiguous, a
  warning in the log and a note on the leaderboard.

Not for a ZCA-whitened dataset (another space; `zca.py` checks those).
"""

from __future__ import annotations

import torch

FAR = 3.0  # pixel ranges beyond the normalised interval: surely not normalised
BEYOND = 1.0  # ... : worth a warning
SAMPLE = 1_000_000  # values per channel the quantiles are taken from
QUANTILES = (0.001, 0.999)


def _sample(x: torch.Tensor) -> torch.Tensor:
    """A strided sample of at most about SAMPLE values per channel, (C, n)."""
    flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1).float()
    return flat[:, :: max(1, flat.shape[1] // SAMPLE)]


def _whole_numbers(x: torch.Tensor, sample: torch.Tensor) -> bool:
    """Whether every value is a whole number (the sample first: cheap, and nearly always
    decisive)."""
    return bool(torch.equal(sample, sample.round())) and bool(torch.equal(x, x.round()))


def _fix(mean: list[float], std: list[float]) -> str:
    shown_mean = ", ".join(f"{m:.4g}" for m in mean)
    shown_std = ", ".join(f"{s:.4g}" for s in std)
    return (
        "save the set in the dataset's normalised space: pixels scaled to [0, 1], then "
        f"(x - mean) / std per channel with the dataset's mean [{shown_mean}] and std "
        f"[{shown_std}] (or save uint8 0-255 pixels, which are normalised on import)"
    )


def judge(x: torch.Tensor, mean: list[float], std: list[float]) -> tuple[str, str, str] | None:
    """("error" or "warning", what is wrong, the fix) for a float set `x` (N, C, H, W)
    that does not look normalised with `mean` and `std`; None when it does."""
    mean_t, std_t = torch.tensor(mean).float(), torch.tensor(std).float()
    low, high = (0 - mean_t) / std_t, (1 - mean_t) / std_t
    width = 1 / std_t
    sample = _sample(x)
    q_low, q_high = torch.quantile(sample, torch.tensor(QUANTILES), dim=1)
    excess = torch.maximum(low - q_low, q_high - high) / width
    lo, hi = x.min().item(), x.max().item()
    span = f"values span [{lo:.4g}, {hi:.4g}]"
    bounds = zip(low.tolist(), high.tolist(), strict=True)
    interval = ", ".join(f"[{a:.2f}, {b:.2f}]" for a, b in bounds)
    fix = _fix(mean, std)
    if lo >= 0 and hi >= 2 and _whole_numbers(x, sample):
        what = f"{span}, all whole numbers: raw pixels saved as floats, not normalised"
        return "error", what, fix
    worst = excess.max().item()
    if worst > FAR:
        what = (
            f"{span}, {worst:.1f} pixel ranges beyond what the dataset's normalisation "
            f"gives ({interval} per channel): not in its normalised space"
        )
        return "error", what, fix
    if worst > BEYOND:
        what = (
            f"{span}, {worst:.1f} pixel ranges beyond what the dataset's normalisation "
            f"gives ({interval} per channel): is it normalised with the dataset's statistics?"
        )
        return "warning", what, fix
    if lo >= 0 and hi <= 1 and bool((low < -0.25).all()):
        what = (
            f"{span}, where the dataset's normalised pixels span {interval}: pixels in "
            "[0, 1] that were never normalised?"
        )
        return "warning", what, fix
    return None
