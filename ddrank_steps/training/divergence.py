"""Whether a run blew up, read from its curve: every blow-up is flagged, not only the ones
that reach NaN.

A too-large LR does not always overflow within a short run: at `lr: 10000` for 3 epochs
the mean train loss goes 2.4 -> 5.4e4 -> 4.4e9 while the accuracy sits at chance, and that
accuracy is a broken net's, not the set's. A run is diverged when, at an evaluation point,

- its mean train loss is not finite (NaN or inf; the curve holds null), or
- its mean train loss is above `loss_growth` times the first point's (the protocol's
  `divergence.loss_growth`, default `LOSS_GROWTH`): a healthy run's loss falls, and even a
  noisy or badly tuned one stays within a small factor of where it started, or
- its test accuracy has stayed at chance (at most `CHANCE_MARGIN` / classes) at every
  point so far while its loss has at least doubled since the first point: a net that
  learns nothing and drifts away.

Judged after training, from the curve alone, so it changes no weight and no curve, only
which LR is selected (a diverged LR never is while another trained) and the flags.
"""

from __future__ import annotations

LOSS_GROWTH = 100.0
CHANCE_MARGIN = 1.5  # "at chance": at most 1.5x the accuracy of guessing
CHANCE_LOSS_GROWTH = 2.0


def loss_growth_of(protocol: dict) -> float:
    """The protocol's bound on the train loss relative to its start."""
    settings = protocol.get("divergence") or {}
    return float(settings.get("loss_growth") or LOSS_GROWTH)


def divergence_of(curve: list[dict], num_classes: int, loss_growth: float) -> dict | None:
    """{"epoch", "reason"} of the first evaluation point where the run counts as diverged
    (see the module docstring), or None for a healthy run."""
    if not curve:
        return None
    start = curve[0]["train_loss"]
    chance = CHANCE_MARGIN / max(num_classes, 1)
    at_chance = True
    for point in curve:
        loss = point["train_loss"]
        if loss is None:
            return {"epoch": point["epoch"], "reason": "the train loss is not finite"}
        if start is None or start <= 0:
            continue
        if loss > loss_growth * start:
            reason = (
                f"the train loss grew from {start:.3g} to {loss:.3g}, past {loss_growth:g}x its "
                "start (protocol divergence.loss_growth)"
            )
            return {"epoch": point["epoch"], "reason": reason}
        at_chance = at_chance and point["test"] <= chance
        if at_chance and loss >= CHANCE_LOSS_GROWTH * start:
            reason = (
                f"the test accuracy stayed at chance ({point['test']:.3f} with "
                f"{num_classes} classes) while the train loss grew from {start:.3g} to "
                f"{loss:.3g}"
            )
            return {"epoch": point["epoch"], "reason": reason}
    return None
