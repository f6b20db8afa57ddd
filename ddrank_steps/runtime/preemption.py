"""A job asked to stop: SLURM's warning signal before a time limit or preemption
(SIGUSR1, `--signal` in the SLURM profile) and SIGTERM (a scheduler's, or the one a job
gets when its Snakemake dies) only raise a flag here. A training job looks at it at its
next safe point (the end of an epoch), writes a checkpoint and exits with `EXIT_CODE`, so
that Snakemake's retry, or the executor's requeue, resumes it instead of starting over.

A second signal of the same kind stops the process at once (the default action), for
whoever cannot wait for an epoch to end.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

# EX_TEMPFAIL: "try again later", distinct from a failure (1) and a bad input (2)
EXIT_CODE = 75
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

_received: list[str] = []


class Stopped(Exception):
    """Raised at a safe point after the checkpoint is written: the job ends here."""

    def __init__(self, epoch: int, reason: str):
        super().__init__(f"stopped after epoch {epoch} on {reason}")
        self.epoch = epoch
        self.reason = reason


def _on_signal(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if name in _received:  # asked twice: no more waiting for a safe point
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    _received.append(name)


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Catch the stop signals inside the block (in the main thread, as Python requires),
    and give their handlers back after it (a stage may run inside a test's process)."""
    before = {signum: signal.signal(signum, _on_signal) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        reset()


def requested() -> str | None:
    """The name of the first stop signal received, None while none was."""
    return _received[0] if _received else None


def request(reason: str) -> None:
    """Ask for a stop as a signal would (tests, and a rank told by another)."""
    if reason not in _received:
        _received.append(reason)


def reset() -> None:
    _received.clear()
