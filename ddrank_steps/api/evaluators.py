"""DD-Ranking's Python API on the cached workflow: `LabelRobustScoreHard`,
`LabelRobustScoreSoft`, `AugmentationRobustScore`, `GeneralEvaluator`.

The constructors take `ddranking.metrics` 0.2.0's parameters in its order with its defaults
(`reference_defaults.yaml`'s `signatures` and `defaults`, which the translator reads too),
`compute_metrics` its arguments, and the results carry its keys; without `save_path` the
reference's CSV path is written. So replacing `ddranking` with `ddrank_steps` in a script
is the whole migration. Each call writes a config and runs the workflow
(see `evaluator_base`), so terms are cached and shared between calls: a second method, IPC or
call trains only what it adds. Units differ from the reference on purpose: accuracies and
their differences are fractions, LRS and ARS are in [0, 100] (the reference feeds percent
into exp and prints LRS near -0.157 for most methods).

Beside the reference's parameters every evaluator takes, keyword-only, `work_dir` (where
the cache lives; default `ddrank-work/` beside `save_path` or in the current directory),
`cores`, `method_name` (default: `set-` and the set's content hash), `seed`, and
`real_accuracies` / `real_protocols` (ddrank's config keys of those names); other keys the
reference's Config or documentation reads (`default_lr`, GeneralEvaluator's
`syn_batch_size`, ...) are taken as keywords too.
"""

from __future__ import annotations

from ddrank_steps.api.evaluator_base import Evaluator, summary_value
from ddrank_steps.api.reference_defaults import COMPUTE_DEFAULTS

# compute_metrics' weight defaults, as the reference's signatures (reference_defaults.yaml)
LRS_LAMBDA = COMPUTE_DEFAULTS["lrs_hard"]["lrs_lambda"]
SOFT_LRS_LAMBDA = COMPUTE_DEFAULTS["lrs_soft"]["lrs_lambda"]
ARS_LAMBDA = COMPUTE_DEFAULTS["ars"]["ars_lambda"]


class _LabelRobust(Evaluator):
    def result(self, score: dict) -> dict:
        return {
            f"{name}_{stat}": summary_value(score, quantity, stat)
            for name, quantity in (
                ("hard_label_recovery", "hlr"),
                ("improvement_over_random", "ior"),
                ("label_robust_score", "lrs"),
            )
            for stat in ("mean", "std")
        }

    def rounds_table(self, score: dict) -> dict[str, list]:
        rounds = score["rounds"]
        return {
            "hard_label_recovery": [r["hlr"] for r in rounds],
            "improvement_over_random": [r["ior"] for r in rounds],
            "lrs": [r["lrs"] for r in rounds],
        }


class LabelRobustScoreHard(_LabelRobust):
    """HLR, IOR and LRS of a set trained with hard labels."""

    METRIC = "lrs_hard"

    def compute_metrics(
        self,
        image_tensor=None,
        image_path=None,
        hard_labels=None,
        syn_lr=None,
        lrs_lambda=LRS_LAMBDA,
    ) -> dict:
        return self._compute(image_tensor, image_path, hard_labels, None, syn_lr, lrs_lambda)


class LabelRobustScoreSoft(_LabelRobust):
    """HLR, IOR and LRS of a set trained with soft labels (its own in mode S, else the
    teachers')."""

    METRIC = "lrs_soft"

    def compute_metrics(
        self,
        image_tensor=None,
        image_path=None,
        soft_labels=None,
        syn_lr=None,
        lrs_lambda=SOFT_LRS_LAMBDA,
    ) -> dict:
        return self._compute(image_tensor, image_path, None, soft_labels, syn_lr, lrs_lambda)


class AugmentationRobustScore(Evaluator):
    """ARS and the with/without-augmentation gaps."""

    METRIC = "ars"

    def compute_metrics(
        self,
        image_tensor=None,
        image_path=None,
        soft_labels=None,
        syn_lr=None,
        ars_lambda=ARS_LAMBDA,
    ) -> dict:
        return self._compute(image_tensor, image_path, None, soft_labels, syn_lr, ars_lambda)

    def result(self, score: dict) -> dict:
        # the reference code's keys, then the documentation's spellings of the same values
        # (its docs say with_aug_mean), so a script written against either runs
        return {
            f"{name}_{stat}": summary_value(score, quantity, stat)
            for name, quantity in (
                ("with_aug_scores", "with_aug"),
                ("without_aug_scores", "without_aug"),
                ("augmentation_robust_score", "ars"),
                ("with_aug", "with_aug"),
                ("without_aug", "without_aug"),
            )
            for stat in ("mean", "std")
        }

    def rounds_table(self, score: dict) -> dict[str, list]:
        rounds = score["rounds"]
        return {
            "with_aug_scores": [r["with_aug"] for r in rounds],
            "without_aug_scores": [r["without_aug"] for r in rounds],
            "ars_list": [r["ars"] for r in rounds],
        }


class GeneralEvaluator(Evaluator):
    """The set's plain test accuracy (the reference's class cannot run; this one does).
    Hard labels unless `use_soft_label` (or ddrank's `label_type`) says soft; given neither,
    soft labels passed as `labels` (N x classes) train as mode S."""

    METRIC = "accuracy"

    def compute_metrics(self, image_tensor=None, image_path=None, labels=None, syn_lr=None) -> dict:
        hard = soft = None
        if labels is not None:
            soft_given = getattr(labels, "dim", lambda: 1)() == 2
            hard, soft = (None, labels) if soft_given else (labels, None)
        return self._compute(image_tensor, image_path, hard, soft, syn_lr, None)

    def result(self, score: dict) -> dict:
        return {f"acc_{stat}": summary_value(score, "acc", stat) for stat in ("mean", "std")}

    def rounds_table(self, score: dict) -> dict[str, list]:
        rounds = score["rounds"]
        return {
            "accs": [r["acc"] for r in rounds],
            "lrs": [r["terms"]["syn-any"]["lr"] for r in rounds],
        }


__all__ = [
    "AugmentationRobustScore",
    "GeneralEvaluator",
    "LabelRobustScoreHard",
    "LabelRobustScoreSoft",
]
