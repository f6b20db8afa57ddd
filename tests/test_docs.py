"""The configuration reference documents every key the schema accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
REFERENCE = (REPO / "config" / "README.md").read_text()


def schema_keys() -> list[tuple[str, str]]:
    """(where, key) of every named property: top level, resources and each $defs object."""
    keys = [("top level", k) for k in SCHEMA["properties"]]
    keys += [("resources", k) for k in SCHEMA["properties"]["resources"]["properties"]]
    for name, definition in SCHEMA["$defs"].items():
        keys += [(name, k) for k in definition.get("properties", {})]
    return keys


@pytest.mark.parametrize("where, key", schema_keys())
def test_every_schema_key_is_in_the_config_reference(where, key):
    # written as `key`, or inside a dotted name such as `resources.train_threads`
    pattern = rf"`(?:[\w.]+\.)?{re.escape(key)}(?:\.[\w.]+)?`"
    assert re.search(pattern, REFERENCE), (where, key)
