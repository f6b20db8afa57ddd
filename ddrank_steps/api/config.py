"""`Config`: DD-Ranking's evaluator config, read from its YAML (or JSON) files.

As `ddranking.config.Config`: a dict of the reference's keys, built with
`Config.from_file(path)` or `Config(config_path=path)` (the documentation's form, which
the reference itself cannot run), and passed to an evaluator of `ddrank_steps.metrics`.
`get` returns transform lists as lists (the evaluators translate them into ddrank's
transform lists; see `ddrank_steps.api.translate`). The file's path is kept, so errors
name it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ddrank_steps.errors import ConfigError


class Config(dict):
    def __init__(self, config_path: str | Path | dict | None = None, **values):
        self.path: str | None = None
        if isinstance(config_path, dict):
            super().__init__(config_path)
        elif config_path is not None:
            super().__init__(_read(Path(config_path)))
            self.path = str(config_path)
        else:
            super().__init__()
        self.update(values)

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        return cls(config_path=path)

    def get(self, key, default=None):
        value = super().get(key, default)
        if key == "im_size" and value is not None:
            return tuple(value)
        return value

    def where(self) -> str:
        """How errors name this config: its file, or 'config'."""
        return self.path or "config"


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:  # a binary file (a checkpoint, an archive...)
        raise ConfigError(
            f"{path}: cannot be read as text (byte {exc.start} is not UTF-8): a config is a "
            "YAML or JSON text file; check that this is the file you meant"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: a config is a .yaml, .yml or .json file")
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be parsed ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: holds a {type(data).__name__}, not a mapping of keys")
    return data
