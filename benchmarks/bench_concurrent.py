"""Benchmark: a job's LR grid trained one run at a time, together on CUDA streams, and as
one stacked `torch.func` model.

A tiny set's ConvNet-3 leaves a GPU mostly idle, so the 5 runs of an LR grid could share
it. Three ways, the same protocol, set, batch order and initial weights, measured in this
process one after the other:
- sequential: `engine.train_group(concurrent=False)`, the runs one after the other;
- streams:    `engine.train_group(concurrent=True)`, every run steps on each batch in
              turn, each on its own CUDA stream (plain interleaving on the CPU);
- stacked:    the K models' parameters stacked (`torch.func.stack_module_state`), one
              `vmap`ped forward/backward over the K models per batch, and a functional
              SGD (momentum, weight decay, a per-model LR) on the stacked tensors. The
              engine does not use it; measured here to see whether it would pay.
Each way's accuracies are checked against the sequential ones (printed as the largest
difference), so a fast but wrong way shows. Ratios are sequential time / that way's.

Run: `python benchmarks/bench_concurrent.py [--device cuda] [--ipc 10 50] [--epochs N]`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_protocols import convnet_protocol

from ddrank_steps.models import build_model
from ddrank_steps.seeding import derive_seed
from ddrank_steps.training.engine import RunGroup, Split, resolve_device, train_group

LRS = [0.001, 0.005, 0.01, 0.05, 0.1]  # the reference's grid
CLASSES = 10
SEED = 0


def protocol(epochs: int, batch: int, width: int) -> dict:
    return convnet_protocol(epochs, batch, model_options={"width": width}, lr_grid=LRS)


def engine_grid(p: dict, train: Split, test: Split, shape, concurrent: bool) -> list[float]:
    group = RunGroup(p, SEED, train, test, None, shape, CLASSES)
    results, _ = train_group(group, LRS, show_progress=False, concurrent=concurrent)
    return [r.acc for r in results]


def stacked_grid(p: dict, train: Split, test: Split, shape) -> list[float]:
    """The K runs as one vmapped model, with the engine's initial weights and batch order
    and a functional SGD equal to torch.optim.SGD's (dampening 0, no Nesterov)."""
    device = train.images.device
    torch.manual_seed(derive_seed("init", SEED))  # the engine's initial weights
    model = build_model(p["model"], CLASSES, shape[0], shape[1:], p["model_options"]).to(device)
    models = [copy.deepcopy(model) for _ in LRS]
    params, buffers = stack_module_state(models)  # GroupNorm (instance norm) has no buffers
    base = copy.deepcopy(model).to("meta")
    lrs = torch.tensor(LRS, device=device)
    momentum, decay = p["momentum"], p["weight_decay"]

    def loss_of(params, buffers, images, labels):
        return F.cross_entropy(functional_call(base, (params, buffers), (images,)), labels)

    grads_of = vmap(grad(loss_of), in_dims=(0, 0, None, None))
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}
    order_gen = torch.Generator().manual_seed(derive_seed("order", SEED))
    batch, first = p["batch_size"], True
    for _ in range(p["epochs"]):
        order = torch.randperm(len(train.labels), generator=order_gen).to(device)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            grads = grads_of(params, buffers, train.images[idx], train.labels[idx])
            with torch.no_grad():
                for k, param in params.items():
                    step = grads[k] + decay * param
                    velocity[k] = step.clone() if first else velocity[k].mul_(momentum).add_(step)
                    param.sub_(lrs.view(-1, *[1] * (param.dim() - 1)) * velocity[k])
            first = False
    with torch.inference_mode():
        forward = vmap(
            lambda params, buffers, x: functional_call(base, (params, buffers), (x,)),
            in_dims=(0, 0, None),
        )
        hits = torch.zeros(len(LRS), device=device)
        for start in range(0, len(test.labels), 1000):
            out = forward(params, buffers, test.images[start : start + 1000])
            hits += (out.argmax(-1) == test.labels[start : start + 1000]).sum(1)
    return (hits / len(test.labels)).tolist()


def learnable(n: int, shape, seed: int, device: torch.device) -> Split:
    """Noise plus a fixed pattern per class (the same patterns for train and test), so the
    LRs reach different accuracies and a wrong way of training shows in them."""
    patterns = torch.randn(CLASSES, *shape, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = torch.randn(n, *shape, generator=g) + 0.5 * patterns[labels]
    return Split(images.to(device), labels.to(device))


def timed(repeats: int, device: torch.device, fn, *args) -> tuple[float, float, list[float]]:
    """The median wall time and process CPU time of `fn(*args)` over `repeats` calls, and
    its last result. On a shared CPU the CPU time is the steadier of the two."""
    walls, cpus, accs = [], [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        accs = fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls), statistics.median(cpus), accs


def largest_gap(accs: list[float], reference: list[float]) -> float:
    return max(abs(a - b) for a, b in zip(accs, reference, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipc", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256, help="the reference's syn_batch_size")
    ap.add_argument("--width", type=int, default=128, help="ConvNet-3's default")
    ap.add_argument("--test", type=int, default=1000, help="test images")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-stacked", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    shape = (3, 32, 32)
    print(
        f"device {device}, threads {args.threads}, ConvNet-3 width {args.width}, {shape}, "
        f"{len(LRS)} LRs, {args.epochs} epochs, batch {args.batch}, median of {args.repeats}"
    )
    print(
        f"{'ipc':>4} {'sequential s':>13} {'streams s':>10} {'stacked s':>10} "
        f"{'streams x':>10} {'stacked x':>10} {'max |Δacc| streams':>19} {'stacked':>8}"
    )
    for ipc in args.ipc:
        train = learnable(CLASSES * ipc, shape, seed=ipc, device=device)
        test = learnable(args.test, shape, seed=1000 + ipc, device=device)
        warm = protocol(1, args.batch, args.width)  # one-time costs (allocator, cuDNN plans)
        engine_grid(warm, train, test, shape, False)
        engine_grid(warm, train, test, shape, True)
        if not args.skip_stacked:
            stacked_grid(warm, train, test, shape)
        p = protocol(args.epochs, args.batch, args.width)
        data = (p, train, test, shape)
        t_seq, c_seq, acc_seq = timed(args.repeats, device, engine_grid, *data, False)
        t_str, c_str, acc_str = timed(args.repeats, device, engine_grid, *data, True)
        if args.skip_stacked:
            t_stk, c_stk, acc_stk = float("nan"), float("nan"), [float("nan")] * len(LRS)
        else:
            t_stk, c_stk, acc_stk = timed(args.repeats, device, stacked_grid, *data)
        print(
            f"{ipc:>4} {t_seq:>13.2f} {t_str:>10.2f} {t_stk:>10.2f} {t_seq / t_str:>9.2f}x "
            f"{t_seq / t_stk:>9.2f}x {largest_gap(acc_str, acc_seq):>19.4f} "
            f"{largest_gap(acc_stk, acc_seq):>8.4f}"
        )
        print(
            f"     CPU seconds of this process: {c_seq:.2f}, {c_str:.2f}, {c_stk:.2f} "
            f"({c_seq / c_str:.2f}x, {c_seq / c_stk:.2f}x)"
        )
        print(f"     sequential accuracies {', '.join(f'{a:.3f}' for a in acc_seq)}")


if __name__ == "__main__":
    main()
