"""Tell a stale Snakemake lock from an active run.

Snakemake locks the working directory while it runs (`.snakemake/locks/`). A run killed
with SIGKILL (or by a power loss) leaves its lock behind, and the next run stops with
"Directory cannot be locked ... --unlock": the same message a second run gets while the
first is still working, where unlocking would let two runs write the same files.

So the workflow records who holds the lock: its `onstart` hook writes `RUN_FILE` (pid,
host, start time) and `onsuccess`/`onerror` remove it. When the workflow is parsed while a
lock exists, `lock_report` says which case this is: that process alive on this host (an
active run: wait), or gone (a stale lock: `snakemake --unlock`, then rerun).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_DIR = Path(".snakemake") / "locks"
RUN_FILE = Path(".snakemake") / "ddrank-run.json"


def record_start() -> None:
    """Write who runs the workflow here (the onstart hook)."""
    RUN_FILE.parent.mkdir(parents=True, exist_ok=True)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    RUN_FILE.write_text(json.dumps(info) + "\n")


def record_end() -> None:
    """Forget it (the onsuccess and onerror hooks); only this process's own record."""
    if _read().get("pid") == os.getpid():
        RUN_FILE.unlink(missing_ok=True)


def _read() -> dict:
    try:
        return json.loads(RUN_FILE.read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    """Whether `pid` is a live Snakemake (a reused pid of another program is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:
        return b"snakemake" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS): trust the pid
        return True


def lock_report() -> str | None:
    """What a lock in this working directory means, or None when there is none."""
    if not LOCK_DIR.is_dir() or not any(LOCK_DIR.iterdir()):
        return None
    info = _read()
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int):
        return (
            "ddrank: this directory is locked by a Snakemake run that left no record (it "
            "was killed before its jobs started, or is still planning them). If no "
            "snakemake runs here, remove the stale lock with `snakemake --unlock` and rerun."
        )
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    if host != socket.gethostname():
        return (
            f"ddrank: this directory is locked by a run on host {host} (pid {pid}, started "
            f"{started}). If it still runs there, wait for it; if it is gone, remove the stale "
            "lock with `snakemake --unlock` and rerun."
        )
    if _alive(pid):
        return (
            f"ddrank: another run is active in this directory (pid {pid}, started {started}). "
            "Wait for it to finish (or stop it); do not use --unlock, which would let two "
            "runs write the same files."
        )
    return (
        f"ddrank: the lock is stale: the run that held it (pid {pid}, started {started}) is "
        "gone, killed before it could unlock. Remove the lock with `snakemake --unlock` and "
        "rerun; finished results are kept and only the interrupted jobs are redone."
    )
