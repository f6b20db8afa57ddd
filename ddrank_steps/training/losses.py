"""Soft-label losses of DD-Ranking, with the reference's names, kwargs and defaults.

s = student logits, t = teacher logits (or stored soft labels, which are logits too),
T = temperature, B = batch size.
- `kl`:  (1/B) Σ_i Σ_c p_t (log p_t − log p_s), p = softmax(·/T); × T² if scale_loss.
- `sce`: (1/B) Σ_i Σ_c −p_t log p_s; × T² if scale_loss. (KL plus the teacher's entropy:
  the student's gradient is the same.)
- `mse_gt`: mse_weight · mean((s − t)²) + ce_weight · CE(s, y), y the hard labels.
  (The reference passes the soft-label tensor itself as y in mode S; we always use the
  set's hard labels, which is what "ground truth" means.)
Hard labels use plain cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ddrank_steps.errors import ConfigError

SoftLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_KWARGS = {
    "kl": {"temperature": 1.2, "scale_loss": False},
    "sce": {"temperature": 1.2, "scale_loss": False},
    "mse_gt": {"mse_weight": 1.0, "ce_weight": 0.0},
}


def kl_loss(s, t, temperature: float = 1.2, scale_loss: bool = False):
    log_p_s = F.log_softmax(s / temperature, dim=1)
    p_t = F.softmax(t / temperature, dim=1)
    loss = F.kl_div(log_p_s, p_t, reduction="batchmean")
    return loss * temperature**2 if scale_loss else loss


def sce_loss(s, t, temperature: float = 1.2, scale_loss: bool = False):
    log_p_s = F.log_softmax(s / temperature, dim=1)
    p_t = F.softmax(t / temperature, dim=1)
    loss = -(p_t * log_p_s).sum(dim=1).mean()
    return loss * temperature**2 if scale_loss else loss


def mse_gt_loss(s, t, y, mse_weight: float = 1.0, ce_weight: float = 0.0):
    loss = mse_weight * F.mse_loss(s, t)
    if ce_weight:
        loss = loss + ce_weight * F.cross_entropy(s, y)
    return loss


def resolve_kwargs(criterion: str, kwargs: dict | None) -> dict:
    """The loss's kwargs with the reference's defaults filled in; unknown keys are errors."""
    if criterion not in DEFAULT_KWARGS:
        raise ConfigError(
            f"soft_label_criterion '{criterion}' is unknown; valid: {sorted(DEFAULT_KWARGS)}"
        )
    defaults = DEFAULT_KWARGS[criterion]
    unknown = sorted(set(kwargs or {}) - set(defaults))
    if unknown:
        raise ConfigError(
            f"loss_fn_kwargs {unknown} are not options of '{criterion}'; valid: {sorted(defaults)}"
        )
    return {**defaults, **(kwargs or {})}


def make_soft_loss(criterion: str, kwargs: dict | None) -> SoftLoss:
    """A loss (student logits, teacher logits, hard labels) -> scalar."""
    kw = resolve_kwargs(criterion, kwargs)
    if criterion == "kl":
        return lambda s, t, y: kl_loss(s, t, **kw)
    if criterion == "sce":
        return lambda s, t, y: sce_loss(s, t, **kw)
    return lambda s, t, y: mse_gt_loss(s, t, y, **kw)
