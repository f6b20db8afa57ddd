"""Data-parallel training under torchrun: process group set-up, batch sharding, reductions.

A job launched by `torchrun --nproc-per-node N` (the real-hard runs, and the sets of at
least `resources.ddp_min_images` images, when `resources.real_processes` > 1; the run
protocol holds N as `processes`) trains one model with DistributedDataParallel. Every
rank draws the same seeded permutation; each global batch of `batch_size` is split
across the ranks (`batch_size / N` each, as the reference divides it), so the run
sees the same data per step as one process would. Test accuracy is computed on a
shard per rank and summed across ranks. The same code runs with NCCL on GPUs and
gloo on CPUs. Outside torchrun (no process group) everything here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ddrank_steps.errors import ConfigError


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_threads(threads: int) -> int:
    """This process's share of a job's CPU threads: the rules declare `train_threads` x N
    for a job of N processes and pass that total, and N processes of N x train_threads
    threads each would oversubscribe the cores (measured 2.5x slower with gloo on 2 cores)."""
    return max(1, threads // int(os.environ.get("WORLD_SIZE", "1")))


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment; the device to use."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise ConfigError(
            f"batch_size {batch_size} must be divisible by the {world} processes of a "
            "distributed run; change batch_size or resources.real_processes"
        )


def shard_order(order: torch.Tensor, batch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's part of each global batch, in order. A last batch that does not split
    evenly is padded from its own start (as DistributedSampler pads), so every rank takes
    the same number of steps and no collective waits forever."""
    parts = []
    for chunk in order.split(batch):
        short = (-len(chunk)) % world
        if short:
            chunk = torch.cat([chunk, chunk.repeat(short // len(chunk) + 1)[:short]])
        parts.append(chunk[rank::world])
    return torch.cat(parts)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics) before evaluating, so all
    ranks evaluate the same model."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def sum_counts(correct: torch.Tensor, total: int) -> tuple[int, int]:
    counts = torch.stack([correct.to(torch.float64), torch.tensor(float(total))]).to(correct.device)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    return int(counts[0].item()), int(counts[1].item())


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag, true on every rank when it is true on any: the ranks decide alike."""
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
