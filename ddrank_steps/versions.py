"""Software versions recorded in every result, so a number can be traced to its stack."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def software_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("ddrank-steps", "torch", "torchvision", "numpy", "snakemake", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
