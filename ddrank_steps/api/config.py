"""`Config`: DD-Ranking's evaluator config, read from its YAML (or JSON) files.

As `ddranking.config.Config` where a script can tell: built with `Config(dict)`,
`Config.from_file(path)` or `Config(config_path=path)` (the documentation's form, which
the reference itself cannot run); its keys under `.config` (here the object itself, a
dict); `get` returns `im_size` as a tuple and `custom_train_trans` / `custom_val_trans` as
a torchvision `Compose` (built from a YAML list as the reference builds it; one the user
set is returned as given). Passed to an evaluator of `ddrank_steps.metrics`, which reads
the keys as stored (a transform list or Compose is translated into ddrank's list; see
`ddrank_steps.api.translate`). The file's path is kept, so errors name it.
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

    @property
    def config(self) -> Config:
        """The keys, as the reference's `Config.config` dict (the same object: a change
        through it is a change of this config)."""
        return self

    def get(self, key, default=None):
        value = super().get(key, default)
        if key == "im_size" and value is not None:
            return tuple(value)
        if key in TRANSFORM_KEYS and isinstance(value, list):
            return _compose(value, f"{self.where()}.{key}")
        return value

    def where(self) -> str:
        """How errors name this config: its file, or 'config'."""
        return self.path or "config"


TRANSFORM_KEYS = ("custom_train_trans", "custom_val_trans")


def _compose(items: list, where: str):
    """A YAML transform list as the reference's Config builds it: each `{name, args}` a
    torchvision transform (dict args as keywords, a list as positional ones; a name of
    `transforms`, else of `transforms.v2` for keyword args), in one Compose."""
    from torchvision import transforms
    from torchvision.transforms import v2

    built = []
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        args = item.get("args") if isinstance(item, dict) else None
        cls = getattr(transforms, str(name), None)
        if cls is None and isinstance(args, dict):
            cls = getattr(v2, str(name), None)
        if cls is None:
            raise ConfigError(
                f"{where}[{i}]: '{name}' is not a torchvision transform; give {{name, args}} "
                "with a name from torchvision.transforms"
            )
        built.append(cls(**args) if isinstance(args, dict) else cls(*(args or [])))
    return transforms.Compose(built)


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
    except yaml.MarkedYAMLError as exc:  # one line: what and where, not PyYAML's excerpt
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: cannot be parsed as YAML: {exc.problem}{at}") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be parsed ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: holds a {type(data).__name__}, not a mapping of keys")
    return data
