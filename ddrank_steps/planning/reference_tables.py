"""What the planner takes from the reference (DD-Ranking) as data: how it trains the
real-hard term (reference_real_protocols.yaml), the real-hard accuracies it knows
(reference_real_accuracies.yaml) and the kinds of reference sets it can build.

A config's `real_protocols` and `real_accuracies` add to these tables or replace their
entries. The workflow stores the plan between runs keyed on the package's own files,
these two among them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from ddrank_steps.protocol_defaults import protocol_defaults

# `images: reference:<kind>`: a set the workflow builds from the real train split
REFERENCE_SET_KINDS = ("random", "herding", "kmeans")

REFERENCE_REAL_PROTOCOLS_FILE = Path(__file__).with_name("reference_real_protocols.yaml")
REFERENCE_REAL_ACCURACIES_FILE = Path(__file__).with_name("reference_real_accuracies.yaml")


@cache
def reference_real_protocols() -> dict[str, dict]:
    """The reference's real-data training table, keyed "{dataset}-{model}". Each entry is
    the protocol defaults with the entry's own keys over them, as the schema's validation
    makes a config's `real_protocols` entry."""
    table = yaml.safe_load(REFERENCE_REAL_PROTOCOLS_FILE.read_text())["protocols"]
    return {
        name: {**protocol_defaults(), **_without(entry, RECIPE_NOTES)}
        for name, entry in table.items()
    }


# what an entry of the table says about itself, beside its protocol keys
RECIPE_NOTES = ("source", "reference")


@cache
def reference_real_recipes() -> dict[str, dict]:
    """Where each entry of the real-data table comes from: {"source": text, "reference":
    whether it is the reference's own recipe}, keyed like the table."""
    table = yaml.safe_load(REFERENCE_REAL_PROTOCOLS_FILE.read_text())["protocols"]
    return {
        name: {"source": str(entry["source"]), "reference": bool(entry["reference"])}
        for name, entry in table.items()
    }


def _without(entry: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in entry.items() if k not in keys}


@cache
def reference_real_accuracies() -> dict[str, dict]:
    """The reference's known real-hard accuracies (fractions), keyed "{dataset}-{model}"."""
    return yaml.safe_load(REFERENCE_REAL_ACCURACIES_FILE.read_text())["accuracies"]
