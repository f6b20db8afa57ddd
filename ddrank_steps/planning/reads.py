"""The files and folders a plan's build looked at, each with its state when it first
looked: the plan stored between runs (stored_plan.py) is valid while every one of them is
as it was.

The code that looks at a path records it here as it looks, before it reads (the checks,
the builder's teacher look-up and `.pt` peeks, the set sizes), so the stored plan learns
what a build depends on from the build itself, and a new read cannot be left out of a
second list. A path's state is its mtime, size and mode, or None where nothing is there:
a path that was missing is recorded too, and a file that appears plans again. A folder's
state covers its listing (an entry added or removed changes its mtime); a file's covers
its contents (a rewrite changes its mtime).

Plain Python, and picklable: the stored plan carries its `Reads`.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_of(path: Path) -> list | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_mode]


class Reads:
    """Path -> its state when the build first looked at it."""

    def __init__(self) -> None:
        self.states: dict[str, list | None] = {}

    def look(self, path: str | os.PathLike) -> Path:
        """Record `path` (its state now, unless it was looked at before); returns it."""
        path = Path(path)
        self.states.setdefault(str(path), state_of(path))
        return path

    def look_tree(self, root: str | os.PathLike, depth: int) -> None:
        """Record `root` and the folders below it down to `depth` levels: a check that may
        look anywhere in there (a dataset's layout) is re-run when a folder's entries change."""
        level = [self.look(root)]
        for _ in range(depth):
            below = []
            for folder in level:
                try:
                    entries = sorted(e.path for e in os.scandir(folder) if e.is_dir())
                except OSError:  # missing, or not a folder: its state says so
                    continue
                below += [self.look(p) for p in entries]
            level = below

    def now(self) -> dict[str, list | None]:
        """The recorded paths with their state now."""
        return {name: state_of(Path(name)) for name in self.states}
