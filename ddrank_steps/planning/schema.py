"""The config checked against workflow/schemas/config.schema.yaml, reported in one line.

Snakemake's own `validate` prints the whole failing schema (a hundred lines and more) with
the key path last. Here the first schema violation comes first, as one line: the config
file, the key path, what is wrong and, for an unknown key, the closest valid one
(`lr_gird` -> did you mean `lr_grid`?); the schema's own wording follows as the detail.
`validate` still runs afterwards, to fill in the defaults.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml


def schema_problem(config: dict, schema_path: str | Path, config_files: list[str]) -> str | None:
    """None when the config is valid; else the first line of the error, a blank line and
    the detail."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    # libyaml's loader where PyYAML has it: the schema is read on every run of the
    # workflow, and the pure-Python loader takes a noticeable part of a no-change run
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = yaml.load(Path(schema_path).read_text(), Loader=loader)
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    where = "config file " + (", ".join(config_files) if config_files else "(none: --config only)")
    key_path, problem = describe(error)
    first = f"config error in {where}: {key_path or '(top level)'}: {problem}"
    detail = f"the schema says: {error.message}"
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    if described:
        detail += f"\nabout this key: {' '.join(str(described).split())}"
    return f"{first}\n\n{detail}"


def dotted(parts) -> str:
    return ".".join(str(p) for p in parts)


def describe(error) -> tuple[str, str]:
    """(key path, what is wrong) of a jsonschema error, naming the closest valid key for an
    unknown one."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        unknown = [
            k
            for k in error.instance
            if k not in known and not any(re.search(p, str(k)) for p in patterns)
        ]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(known)}"
            return dotted([*path, key]), f"unknown key; {hint}"
    if error.validator == "required":
        return dotted(path), error.message
    if error.validator == "enum":
        valid = ", ".join(str(v) for v in error.validator_value)
        close = difflib.get_close_matches(
            str(error.instance), [str(v) for v in error.validator_value], n=1
        )
        hint = f"; did you mean {close[0]}?" if close else ""
        return dotted(path), f"{error.instance!r} is not one of {valid}{hint}"
    if error.validator in ("minimum", "maximum"):
        bound = "or more" if error.validator == "minimum" else "or less"
        return dotted(path), f"{error.message}; set {error.validator_value} {bound}"
    return dotted(path), error.message
