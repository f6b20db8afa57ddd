"""The folder of Snakemake's between-workflow cache ($SNAKEMAKE_OUTPUT_CACHE), checked
before any job when a run passes `--cache`.

Snakemake finds a missing or unwritable cache folder only after a job has run, when it
moves the job's outputs there, and then fails that job: hours of training lost for a typo
in a path. A full disk would fail the same move half-way. So the workflow's onstart asks
here first and stops with one message that names the folder and the fix.

What a cache entry is, and why it is never a mix of two users' files: Snakemake moves
each output first into a temporary folder inside the cache folder, then renames it to its
entry (the same file system, so the rename is atomic), and looks an entry up only when
every one of its files is there (snakemake/caching/local.py, 9.x).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ddrank_steps.runtime.atomic_write import unwritable_reason

LOCATION_VARIABLE = "SNAKEMAKE_OUTPUT_CACHE"
# Below this, a prepared dataset or a checkpoint may not fit: refuse rather than fail a
# job after its training (the largest demo entry is a few MB; ImageNet's a few GB).
MIN_FREE_BYTES = 1 << 30


def cache_problem(location: str | None, min_free: int = MIN_FREE_BYTES) -> str | None:
    """Why the cache folder `location` cannot take entries (None when it can, or when no
    location is set: Snakemake then warns and computes every job locally)."""
    if not location:
        return None
    folder = Path(location)
    where = f"${LOCATION_VARIABLE}={location}"
    if not folder.exists():
        return (
            f"{where} does not exist. Create it once for the lab (mkdir -p {location}; "
            f"chmod 2775 {location} so that the group can add entries), or unset "
            f"{LOCATION_VARIABLE} / drop --cache to compute every job in this project."
        )
    if not folder.is_dir():
        return f"{where} is not a folder. Point {LOCATION_VARIABLE} at the lab's cache folder."
    if why := unwritable_reason(folder):
        return (
            f"{where} is not writable ({why}): results computed here could not be shared. "
            f"Ask its owner for group write access (chmod g+w {location}), or drop --cache."
        )
    free = shutil.disk_usage(folder).free
    if free < min_free:
        return (
            f"{where} has {free / 2**20:.0f} MiB free, less than the "
            f"{min_free / 2**30:.1f} GiB a cache entry may need. Free space there, or drop "
            "--cache to compute every job in this project."
        )
    return None


def configured_location() -> str | None:
    return os.environ.get(LOCATION_VARIABLE)
