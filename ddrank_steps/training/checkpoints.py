"""Checkpoints inside a training job, so that a killed, timed-out or preempted job goes on
from where it was instead of from epoch 0, and ends with the run file it would have
written uninterrupted (bit for bit on the CPU, timings aside).

A checkpoint holds everything the rest of the job depends on, at the end of an epoch: for
each run of the group (each LR) its weights, optimiser, scheduler, fp16 loss scaler, batch
order and augmentation streams, the train loss summed since the last evaluation point and
its curve so far (with the weights kept for a teacher); the runs of the group already
finished; the global RNG streams (torch, CUDA, numpy, Python) and the train_transforms'
own stream. Under torchrun the per-rank streams of every rank are gathered and rank 0
writes one file that every rank reads.

When: at the end of an epoch, every `minutes` of training (`resources.checkpoint_minutes`),
at an evaluation point unless the last write was too recent for its cost (at most
1/`EVAL_COST_FACTOR` of the training time goes to them), and at once when the job is asked
to stop (`runtime.preemption`). Where: `paths.run_checkpoint` of the run file, removed once
the run file is written.

Trust: the file starts with a header naming the computation (protocol, its key, seed, LRs,
the digests of the inputs and of the package's code, device type, processes, how the LRs
train) and the digest of what follows. One that names another computation, or whose bytes
do not match, is named in the log and the job starts over; it is never resumed from.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ddrank_steps.runtime import preemption
from ddrank_steps.runtime.atomic_write import atomic_path
from ddrank_steps.training import distributed
from ddrank_steps.training.group import RunGroup, RunResult
from ddrank_steps.training.run_steps import Run

MAGIC = b"ddrank training checkpoint 1\n"
EVAL_COST_FACTOR = 100
_PACKAGE = Path(__file__).resolve().parents[1]

log = logging.getLogger("ddrank.checkpoints")


# --- what names a computation -------------------------------------------------------------


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def code_digest() -> str:
    """The package's Python sources and torch's version: stricter than the job's code
    inputs (any edit to the package starts a job over), and fixed for the whole job,
    whichever modules it has imported so far."""
    digest = hashlib.sha256(torch.__version__.encode())
    for source in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(source.relative_to(_PACKAGE)).encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()


def run_header(
    protocol: dict, protocol_key: str, seed: int, lrs: list[float], inputs: list[str], **how
) -> dict:
    """What a checkpoint must match to be resumed from: the run's computation (`how`: the
    device type, processes and whether the LRs train together)."""
    canonical = json.dumps(protocol, sort_keys=True, separators=(",", ":"))
    return {
        "protocol_key": protocol_key,
        "protocol": hashlib.sha256(canonical.encode()).hexdigest(),
        "seed": seed,
        "lrs": [float(lr) for lr in lrs],
        "inputs": [file_digest(p) for p in dict.fromkeys(inputs)],
        "code": code_digest(),
        **how,
    }


# --- the state of runs ------------------------------------------------------------------


def _result_state(result: RunResult) -> dict:
    return {
        "lr": result.lr,
        "curve": result.curve,
        "selected_epoch": result.selected_epoch,
        "acc": result.acc,
        "val_acc": result.val_acc,
        "seconds": result.seconds,
        "state": result.state,
    }


def result_from(state: dict) -> RunResult:
    return RunResult(**state)


def _run_state(run: Run, result: RunResult) -> tuple[dict, dict]:
    """(what every rank shares, what is this rank's own) of one run in progress."""
    shared = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "order": run.order_gen.get_state(),
        "result": _result_state(result),
    }
    own = {
        "augment": run.aug_gen.get_state(),
        "loss_sum": run.loss_sum.detach().cpu().clone(),
        "steps": run.steps,
    }
    return shared, own


def _restore_run(run: Run, result: RunResult, shared: dict, own: dict) -> None:
    run.model.load_state_dict(shared["model"])
    run.optimizer.load_state_dict(shared["optimizer"])
    run.scheduler.load_state_dict(shared["scheduler"])
    if run.scaler is not None:
        run.scaler.load_state_dict(shared["scaler"])
    run.order_gen.set_state(shared["order"])
    run.aug_gen.set_state(own["augment"])
    run.loss_sum.copy_(own["loss_sum"])
    run.steps = own["steps"]
    for name, value in shared["result"].items():
        setattr(result, name, value)


def global_rng() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "python": random.getstate(),
    }


def set_global_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def snapshot(
    group: RunGroup,
    runs: list[Run],
    results: list[RunResult],
    epoch: int,
    done: list[RunResult],
    lanes: list | None = None,
) -> tuple[dict, dict]:
    """The group's state after `epoch` of `runs` (trained together, or the one in progress
    after the finished `done`): (shared, this rank's own)."""
    states = [_run_state(run, result) for run, result in zip(runs, results, strict=True)]
    shared = {
        "epoch": epoch,
        "done": [_result_state(r) for r in done],
        "runs": [s[0] for s in states],
    }
    own = {
        "rng": global_rng(),
        "transform": group.transform.stream_state() if group.transform is not None else None,
        "runs": [s[1] for s in states],
        "lanes": lanes,
    }
    return shared, own


def resume(group: RunGroup, runs: list[Run], results: list[RunResult], saved: dict) -> int:
    """Put the saved state into the freshly started `runs`; the epoch they resume after."""
    shared, own = saved["shared"], saved["own"]
    for run, result, s, o in zip(runs, results, shared["runs"], own["runs"], strict=True):
        _restore_run(run, result, s, o)
    set_global_rng(own["rng"])
    if group.transform is not None:
        group.transform.set_stream_state(own["transform"])
    return shared["epoch"]


# --- the file -----------------------------------------------------------------------------


class Checkpoints:
    """One job's checkpoint file: when to write it, writing it, reading it back."""

    def __init__(self, path: str | Path, header: dict, minutes: float, device: torch.device):
        self.path = Path(path)
        self.header = header
        self.interval = minutes * 60.0
        self.device = device
        self.rank, self.world = distributed.rank_world()
        self.last = time.monotonic()
        self.cost = 0.0  # seconds the last write took

    def _due(self, evaluated: bool) -> bool:
        elapsed = time.monotonic() - self.last
        return elapsed >= self.interval or (evaluated and elapsed >= EVAL_COST_FACTOR * self.cost)

    def after_epoch(
        self, epoch: int, evaluated: bool, state: Callable[[], tuple[dict, dict]]
    ) -> None:
        """At the end of `epoch`: write `state()` when due; after a stop signal write it and
        raise `preemption.Stopped`. Every rank decides alike (any rank's signal counts)."""
        stop = preemption.requested()
        due, stopping = self._due(evaluated) or stop is not None, stop is not None
        if self.world > 1:
            due, stopping = distributed.any_rank([due, stopping], self.device)
        if not due:
            return
        start = time.monotonic()
        shared, own = state()
        owns = distributed.gather_objects(own) if self.world > 1 else [own]
        if self.rank == 0:
            self._write({"shared": shared, "own": owns})
        self.last = time.monotonic()
        self.cost = self.last - start
        if stopping:
            raise preemption.Stopped(epoch, stop or "another rank's stop signal")

    def _write(self, payload: dict) -> None:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        body = buffer.getvalue()
        head = {**self.header, "payload_sha256": hashlib.sha256(body).hexdigest()}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            f.write(MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n")
            f.write(body)

    def restore(self) -> dict | None:
        """This rank's saved state ({"shared", "own"}), or None to start over: no file, or
        one that is damaged or from another computation (named in the log)."""
        if not self.path.is_file():
            return None
        try:
            payload = self._read()
        except _Unusable as exc:
            log.warning("checkpoint %s %s: training starts over", self.path, exc)
            return None
        return {"shared": payload["shared"], "own": payload["own"][self.rank]}

    def _read(self) -> dict:
        try:
            data = self.path.read_bytes()
            if not data.startswith(MAGIC):
                raise _Unusable("is not a ddrank checkpoint (or an older format)")
            line, _, body = data[len(MAGIC) :].partition(b"\n")
            head = json.loads(line)
        except (OSError, ValueError) as exc:
            raise _Unusable(f"cannot be read ({exc})") from None
        names = (set(self.header) | set(head)) - {"payload_sha256"}
        differ = sorted(k for k in names if head.get(k) != self.header.get(k))
        if differ:
            raise _Unusable(f"is from another computation (its {', '.join(differ)} differ)")
        if hashlib.sha256(body).hexdigest() != head.get("payload_sha256"):
            raise _Unusable("is damaged (its contents do not match its digest)")
        try:
            payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        except Exception as exc:  # any unpickling failure means the same: not usable
            raise _Unusable(f"cannot be loaded ({str(exc).splitlines()[0]})") from None
        if len(payload["own"]) != self.world:
            raise _Unusable(f"holds {len(payload['own'])} processes, not {self.world}")
        return payload

    def remove(self) -> None:
        """Once the run file is written, the checkpoint has served."""
        if self.rank == 0:
            self.path.unlink(missing_ok=True)


class _Unusable(Exception):
    pass
