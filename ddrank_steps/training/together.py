"""The runs of a group trained together (`train_together`, `engine.train_group(
concurrent=True)`): every run steps on the same prepared batch in turn, each on its own
CUDA stream on a GPU, so the small kernels of K tiny models overlap instead of leaving
most of the device idle. Every run gets the same batches, draws and arithmetic as it
would alone (`engine.train_one`), so the results agree (bit for bit on the CPU; on a GPU
up to the kernels' own nondeterminism). Whether a job's LRs train together is decided by
`runtime.job_policy.lrs_train_together`.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import torch
from tqdm import tqdm

from ddrank_steps.training import checkpoints as checkpointing
from ddrank_steps.training import distributed
from ddrank_steps.training.checkpoints import Checkpoints
from ddrank_steps.training.evaluation import eval_epochs, evaluation_point, select_epoch
from ddrank_steps.training.group import RunGroup, RunResult
from ddrank_steps.training.run_steps import Run, epoch_batches, start_run, step

log = logging.getLogger("ddrank.engine")


class Lanes:
    """Where the runs of a group step together: one CUDA stream per run on a GPU, plain
    interleaving on the CPU. Each run keeps its own global RNG state (dropout and the like
    draw from it), swapped in around its steps, so it draws what it would draw alone."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.streams: list = []
        self.rng_states: list[tuple] = []

    def add(self) -> None:
        """A lane for the run `start_run` just made, from the RNG state it left."""
        self.streams.append(torch.cuda.Stream(self.device) if self.cuda else None)
        self.rng_states.append(self._rng_state())

    def _rng_state(self) -> tuple:
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda else None

    def _set_rng_state(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    def step(self, group: RunGroup, runs: list[Run], batch: tuple) -> None:
        """One step of every run on the same batch. On a GPU each run's kernels queue on its
        stream after the batch is ready, and the default stream waits for all of them
        before the next batch (whose tensors may reuse this one's memory) or an evaluation."""
        main = torch.cuda.current_stream(self.device) if self.cuda else None
        for i, run in enumerate(runs):
            self._set_rng_state(self.rng_states[i])
            if self.cuda:
                self.streams[i].wait_stream(main)
                with torch.cuda.stream(self.streams[i]):
                    step(group, run, *batch)
            else:
                step(group, run, *batch)
            self.rng_states[i] = self._rng_state()
        if self.cuda:
            for stream in self.streams:
                main.wait_stream(stream)


def train_together(
    group: RunGroup,
    lrs: list[float],
    progress: tqdm | None = None,
    checkpoints: Checkpoints | None = None,
    saved: dict | None = None,
) -> list[RunResult]:
    """Every run of the group at once, batch by batch: each batch (order, transforms,
    augmentation, mixing λ) is prepared once and every run steps on it, which is what each
    would see alone since their streams are seeded alike. One process only (no DDP). With
    `checkpoints` the state after an epoch is written when due; `saved` is one to go on
    from."""
    if distributed.rank_world()[1] > 1:
        raise ValueError("LRs train together only in one process; under DDP train_one each")
    start_time = time.perf_counter()
    protocol = group.protocol
    lanes = Lanes(group.train.images.device)
    runs = []
    for lr in lrs:  # each start reseeds the shared streams to the same seeds
        runs.append(start_run(group, lr))
        lanes.add()
    points = eval_epochs(protocol["epochs"], protocol["test_interval"])
    results = [RunResult(lr=lr) for lr in lrs]
    first = 1
    if saved:
        first = checkpointing.resume(group, runs, results, saved) + 1
        lanes.rng_states = list(saved["own"]["lanes"])
        log.info("resumed from epoch %d of the %d LRs trained together", first - 1, len(lrs))
    if progress is not None:
        progress.update(len(runs) * (first - 1))
    for run in runs:
        run.model.train()
    for epoch in range(first, protocol["epochs"] + 1):
        for batch in epoch_batches(group, runs[0]):
            lanes.step(group, runs, batch)
        for run in runs:
            run.scheduler.step()
        if epoch in points:
            for run, result in zip(runs, results, strict=True):
                evaluation_point(group, run, result, epoch)
        if checkpoints is not None:
            checkpoints.after_epoch(
                epoch,
                epoch in points,
                partial(
                    checkpointing.snapshot, group, runs, results, epoch, [], list(lanes.rng_states)
                ),
            )
        if progress is not None:
            progress.update(len(runs))
    seconds = time.perf_counter() - start_time
    for result in results:
        select_epoch(result, protocol["select"])
        result.seconds += seconds
    return results
