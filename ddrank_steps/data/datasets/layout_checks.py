"""The checks every dataset source makes before it reads a file: the root is set (or
download: true fetches the files into a default folder), the root is a folder, and the
files and folders its layout names are there.

Each error names the path, the config field and the fix in the same words for every
source (`InputError`'s three parts, or a `ConfigError` for an unset root). A source
passes its own `layout` (what it expected to find, in words) and `fix` (usually
`root_fix`); `datasets.<name>` in either is replaced by the dataset's key at plan time
(`datasets.check_layout`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ddrank_steps.errors import ConfigError, InputError


def root_fix(source: str, target: str, download: bool = True) -> str:
    """How to point a dataset at its files: set its root to `target` (or download them,
    where the source can)."""
    fix = f"set datasets.<name>.root (the dataset with source: {source}) to {target}"
    return f"{fix}, or set download: true" if download else fix


def root_setting(settings: dict, source: str, fix: str, default: str | None = None) -> Path:
    """The root the settings name (`~` expanded); with download: true and no root, the
    `default` folder that the download fills. An unset root is otherwise a ConfigError."""
    root = settings.get("root")
    if root is None:
        if not settings.get("download") or default is None:
            raise ConfigError(f"datasets.<name>.root is not set for source {source}; {fix}")
        root = default
    return Path(root).expanduser()


def require_root(root: Path, layout: str, fix: str) -> None:
    if not root.is_dir():
        raise InputError(root, "root", f"folder not found; {layout}", fix)


def require_file(path: Path, layout: str, fix: str) -> None:
    if not path.is_file():
        raise InputError(path, "file", f"not found; {layout}", fix)


def require_folder(path: Path, layout: str, fix: str, field: str = "folder") -> None:
    if not path.is_dir():
        raise InputError(path, field, f"not found; {layout}", fix)


def loader_root(
    settings: dict,
    source: str,
    layout: Callable[[Path], str],
    fix: str,
    default: str,
    fetch: Callable[[Path], None],
) -> Path:
    """The root a loader reads: set (or `default`), fetched first with download: true,
    and a folder."""
    root = root_setting(settings, source, fix, default)
    if settings.get("download"):
        fetch(root)
    require_root(root, layout(root), fix)
    return root


def plan_root(settings: dict, source: str, layout: Callable[[Path], str], fix: str) -> Path | None:
    """At plan time: the root, set and a folder; None with download: true (the
    prepare_dataset job fetches the files, so there is nothing to check yet)."""
    if settings.get("download"):
        return None
    root = root_setting(settings, source, fix)
    require_root(root, layout(root), fix)
    return root
