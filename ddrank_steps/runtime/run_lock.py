"""Tell a stale Snakemake lock from an active run.

Snakemake locks the working directory while it runs (`.snakemake/locks/`). A run killed
with SIGKILL (or by a power loss) leaves its lock behind, and the next run stops with
"Directory cannot be locked ... --unlock": the same message a second run gets while the
first is still working, where unlocking would let two runs write the same files.

So the workflow records who holds the lock: its `onstart` hook writes `RUN_FILE` (pid,
host, start time) and `onsuccess`/`onerror` remove it. When the workflow is parsed while a
lock exists, `lock_report` says which case this is: that process alive on this host (an
active run: wait), gone while jobs it started still run (wait for them or stop them; an
unlock now would train them twice), or gone with all its jobs (a stale lock:
`snakemake --unlock`, then rerun). `live_jobs` finds those jobs: ddrank stage processes
whose working directory is this one (/proc). Jobs stop with their run
(`runtime/orphans.py`), so finding one is rare: a job still writing its checkpoint, or a
system without a parent-death signal. `unlock_refusal` and `live_jobs_refusal` stop
`snakemake --unlock` and a new run while either kind of run is alive here.
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


# what a job's command line holds: a stage, gpu_lease, or torchrun starting a stage
JOB_MARKERS = (b"ddrank_steps.stages.", b"ddrank_steps.runtime.gpu_lease")


def live_jobs(folder: str | os.PathLike = ".") -> list[tuple[int, str]]:
    """The ddrank jobs running in `folder` (pid, command line), from /proc; [] without it."""
    here = os.path.realpath(folder)
    found = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if not any(m in cmdline for m in JOB_MARKERS):
                continue
            if os.path.realpath(os.readlink(entry / "cwd")) != here:
                continue
        except OSError:  # gone meanwhile, or someone else's
            continue
        found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return sorted(found)


def _jobs_text(jobs: list[tuple[int, str]]) -> str:
    shown = "; ".join(f"pid {pid}: {cmd.strip()[:120]}" for pid, cmd in jobs[:3])
    more = f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""
    return f"{shown}{more}"


def live_jobs_refusal() -> str | None:
    """Why a run must not start here: jobs of an earlier run still work here (an orphan
    would write the same files as the job this run starts); None when none does."""
    jobs = live_jobs()
    if not jobs:
        return None
    return (
        f"ddrank: jobs of an earlier run are still running in this directory ({_jobs_text(jobs)})."
        " Starting them again would train the same jobs twice. Wait for them to end, or stop "
        f"them (kill {' '.join(str(pid) for pid, _ in jobs)}), then rerun."
    )


def unlock_refusal() -> str | None:
    """Why `snakemake --unlock` must not unlock: the run holding the lock, or jobs it
    started, are alive. None when unlocking is safe."""
    info = _read()
    pid = info.get("pid")
    if isinstance(pid, int) and info.get("host") == socket.gethostname() and _alive(pid):
        return (
            f"ddrank: not unlocking: the run that holds the lock (pid {pid}) is active. Wait "
            "for it to finish, or stop it, and unlock only once it is gone."
        )
    if refusal := live_jobs_refusal():
        return refusal.replace(", then rerun.", ", then unlock.").replace(
            "ddrank: ", "ddrank: not unlocking: ", 1
        )
    return None


def _orphans_text(jobs: list[tuple[int, str]], whose: str) -> str:
    pids = " ".join(str(pid) for pid, _ in jobs)
    return (
        f"ddrank: {whose} is gone but jobs it started still run here ({_jobs_text(jobs)}). "
        "Do not use --unlock while they run: the rerun would train them a second time. "
        f"Wait for them to end, or stop them (kill {pids}); then unlock with "
        "`snakemake --unlock` and rerun."
    )


def lock_report() -> str | None:
    """What a lock in this working directory means, or None when there is none."""
    if not LOCK_DIR.is_dir() or not any(LOCK_DIR.iterdir()):
        return None
    info = _read()
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int):
        if jobs := live_jobs():
            return _orphans_text(jobs, "the run that locked this directory (it left no record)")
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
    if jobs := live_jobs():
        return _orphans_text(jobs, f"the run that held the lock (pid {pid}, started {started})")
    return (
        f"ddrank: the lock is stale: the run that held it (pid {pid}, started {started}) is "
        "gone, killed before it could unlock, and none of its jobs runs. Remove the lock "
        "with `snakemake --unlock` and rerun; finished results are kept and only the "
        "interrupted jobs are redone."
    )
