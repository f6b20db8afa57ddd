"""Software versions recorded in every result, so a number can be traced to its stack."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
CODE_DIGEST_LENGTH = 16  # hex characters of the sha256


def software_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    # timm is optional (timm:<name> models): "not installed" where it is absent
    dists = ("ddrank-steps", "torch", "torchvision", "timm", "numpy", "snakemake", "scikit-learn")
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    # The package version does not change when its code does; this does.
    versions["ddrank-steps-code"] = code_digest()
    return versions


def loaded_sources() -> list[Path]:
    """The ddrank_steps source files loaded in this process, sorted."""
    paths = set()
    for name, module in list(sys.modules.items()):
        if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
            continue
        file = getattr(module, "__file__", None)
        if file and Path(file).suffix == ".py":
            paths.add(Path(file).resolve())
    return sorted(paths)


def code_digest(paths: list[Path] | None = None) -> str:
    """A sha256 prefix over (path relative to the package, content) of each file in `paths`
    (default: the package's loaded sources), sorted by path: the code that made a result."""
    entries = []
    for path in loaded_sources() if paths is None else paths:
        path = Path(path).resolve()
        try:
            relative = path.relative_to(PACKAGE_DIR).as_posix()
        except ValueError:
            relative = path.as_posix()
        try:
            content = path.read_bytes()
        except OSError:  # removed since it was loaded: the name alone
            content = b""
        entries.append((relative, content))
    digest = hashlib.sha256()
    for relative, content in sorted(entries):
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:CODE_DIGEST_LENGTH]
