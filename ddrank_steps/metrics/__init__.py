"""DD-Ranking's drop-in import path: `from ddrank_steps.metrics import LabelRobustScoreHard`
works as `from ddranking.metrics import ...` does. The classes live in
`ddrank_steps.api.evaluators`; this package only re-exports them."""

from ddrank_steps.api.evaluators import (
    AugmentationRobustScore,
    GeneralEvaluator,
    LabelRobustScoreHard,
    LabelRobustScoreSoft,
)

__all__ = [
    "AugmentationRobustScore",
    "GeneralEvaluator",
    "LabelRobustScoreHard",
    "LabelRobustScoreSoft",
]
