"""What Mixup and Cutmix share: their two parameters and their per-batch random draws.

Both mix a batch with a permutation of itself using one λ ~ Beta(α, α) per batch, and (unlike
the reference) both mix the labels too, through the `Mix(perm, λ)` they return, and mix only
with probability p. Their settings:

| setting | ours | the reference's spelling | default |
|---|---|---|---|
| Beta concentration α | `alpha` | Mixup `lambda`, Cutmix `beta` | Mixup 0.8, Cutmix 1.0 |
| probability of mixing a batch | `p` | `mixup_p`, `cutmix_p` (documented, never read) | 1.0 |

Every draw comes from the caller's `torch.Generator` on the images' device (the reference mixes
numpy's and torch's global generators), and each batch draws the same numbers whether or not
it is mixed, so one batch's outcome does not shift the draws of the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ddrank_steps.augment.params import resolve_spellings
from ddrank_steps.errors import ConfigError


@dataclass(frozen=True)
class MixParams:
    alpha: float
    p: float = 1.0


def parse_mix_params(
    kind: str,
    params: Mapping[str, object] | None,
    aliases: Mapping[str, str],
    default_alpha: float,
) -> MixParams:
    """Resolve `params` (ours or the reference's spelling) into MixParams, strictly."""
    if params is None:
        return MixParams(default_alpha)
    valid = sorted(["alpha", "p", *aliases])
    resolved, given_as = resolve_spellings(kind, params, aliases, ("alpha", "p"), valid)
    alpha = resolved.get("alpha", default_alpha)
    p = resolved.get("p", 1.0)
    if not _is_number(alpha) or alpha <= 0:
        key = given_as.get("alpha", "alpha")
        raise ConfigError(f"{kind} param '{key}' must be a number > 0, got {alpha!r}")
    if not _is_number(p) or not 0.0 <= p <= 1.0:
        key = given_as.get("p", "p")
        raise ConfigError(f"{kind} param '{key}' must be a probability in [0, 1], got {p!r}")
    return MixParams(float(alpha), float(p))


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `p: true` is a config mistake, not probability 1.
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class BatchDraw:
    """The host-side numbers of one batch: whether to mix, λ, and `extra` uniforms in [0, 1)."""

    mix: bool
    lam: float
    extra: tuple[float, ...]


def draw_batch(
    params: MixParams, generator: torch.Generator, device: torch.device, n_extra: int = 0
) -> BatchDraw:
    """One batch's draws, fetched to the host together (one sync per batch, as DSA's).

    λ ~ Beta(α, α) is X / (X + Y) with X, Y ~ Gamma(α): torch's Beta distribution cannot take
    a generator, its gamma sampler can.
    """
    alpha = torch.full((2,), params.alpha, dtype=torch.float64, device=device)
    gammas = torch._standard_gamma(alpha, generator=generator)
    uniforms = torch.rand(2 + n_extra, generator=generator, device=device, dtype=torch.float64)
    x, y, gate, tie, *extra = torch.cat([gammas, uniforms]).tolist()
    # Both gammas can underflow to 0 for tiny α; Beta(α, α) then sits at 0 or 1 equally often.
    lam = x / (x + y) if x + y > 0 else float(tie < 0.5)
    return BatchDraw(mix=gate < params.p, lam=lam, extra=tuple(extra))


def permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device=device)


def check_inputs(kind: str, images: torch.Tensor, generator: torch.Generator) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"{kind} expects float images of shape (N, C, H, W), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    if generator.device.type != images.device.type:
        raise ValueError(
            f"{kind} needs a generator on the images' device ({images.device}), got one on "
            f"{generator.device}; create it with torch.Generator(device=images.device)"
        )
