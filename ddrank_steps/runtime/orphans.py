"""No job outlives the Snakemake run that started it, and an orphan's files are never
published.

Snakemake starts each job as `bash -c '<shell prefix><command>'`. The prefix ends with
`exec` (`job_policy.shell_prefix`), so bash becomes the job's Python process instead of
waiting on it: killing "the wrapper" kills the job. It also exports the pid of the
process that started the job (`ENV_MASTER_PID`: bash's $PPID, the Snakemake process, or
the Python process that runs the workflow through the API).

`watch_master` (called first by every stage and by gpu_lease) then asks Linux to send the
job SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG). The setting survives exec, so
under torchrun the agent stops with Snakemake and the workers, which call it again, stop
with the agent. SIGTERM rather than SIGKILL so that a training job can write a
checkpoint on the way out. A master that died before the call is caught by looking.

Belt and braces, and for systems without prctl: `check_publish` (called by atomic_write
before every rename) refuses to publish a file once the master is gone, so a file
written by an orphan never looks like a finished result to the next run.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ddrank_steps.runtime.job_policy import ENV_MASTER_PID

PR_SET_PDEATHSIG = 1

# the master's identity when the job started: (pid, start time), or None outside a job
_master: tuple[int, str | None] | None = None


class OrphanError(RuntimeError):
    """The run that started this job is gone: its outputs must not be published."""


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), which tells a reused pid from
    the original; None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: check_publish still guards outputs
        pass


def master_gone() -> bool:
    """Whether the run that started this job has ended (False outside a job)."""
    if _master is None:
        return False
    pid, started = _master
    if not _alive(pid):
        return True
    return started is not None and _start_time(pid) not in (None, started)


def watch_master() -> None:
    """Stop this job when its parent dies, and remember the run that started it; exit at
    once when that run is already gone. A no-op outside a workflow job."""
    global _master
    text = os.environ.get(ENV_MASTER_PID, "")
    if not text.isdigit():
        return
    _set_parent_death_signal()
    pid = int(text)
    if _master is None or _master[0] != pid:
        _master = (pid, _start_time(pid))
    if not _alive(pid) or (os.getppid() == 1 and pid != 1):
        sys.stderr.write(f"ddrank: the run that started this job (pid {pid}) is gone; stopping.\n")
        sys.exit(1)


def check_publish(target: str | os.PathLike) -> None:
    """Raise OrphanError when the run that started this job is gone: `target` would be an
    orphan's output, which the next run must not take for a finished result."""
    if master_gone():
        raise OrphanError(
            f"{target}: not written: the Snakemake run that started this job (pid "
            f"{_master[0]}) is gone, so this job is an orphan; the next run redoes it."
        )
