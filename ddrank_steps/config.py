"""DD-Ranking's drop-in import path for its config: `from ddrank_steps.config import
Config`, as `from ddranking.config import Config`. The class lives in
`ddrank_steps.api.config`; this module only re-exports it."""

from ddrank_steps.api.config import Config

__all__ = ["Config"]
