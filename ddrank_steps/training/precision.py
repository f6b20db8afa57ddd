"""A run's arithmetic (the protocol's `precision`): autocast, gradient scaling, memory layout.

- `fp32`: the reference's, and a run's whose protocol names no precision (that meaning is
  stated once, in protocol_defaults: `precision_of`). On CUDA, PyTorch may run
  convolutions in TF32 (its default for cuDNN), and so does the reference; matmuls stay
  full fp32.
- `bf16`: autocast to bfloat16 on the CPU or CUDA. bfloat16 has fp32's exponent range, so
  no loss scaling is needed.
- `fp16`: CUDA autocast to float16 with a gradient scaler (float16 gradients underflow
  without one). Not on the CPU, where PyTorch's float16 kernels are slow and incomplete.

Training steps (forward and loss) and evaluation both run under the run's autocast, so a
run is tested in the arithmetic it was trained in. A step whose loss overflows is a step
like any other: a non-finite mean train loss marks the LR diverged (engine).

Memory layout and evaluation batch are chosen per device and precision from measurement
(`benchmarks/bench_precision.py`), never because they "should" be faster: on this
project's 2-core Xeon CPU (AVX512-BF16, AMX), channels_last made a ConvNet-3 training step
slower in fp32 (1.02-1.1x the time) and much slower in bf16 (2x), so the CPU keeps the
contiguous layout.
The CUDA rows were not measured (no GPU was lent to the session that wrote this); they
keep PyTorch's defaults until the benchmark is run on one.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from ddrank_steps.errors import ConfigError

log = logging.getLogger("ddrank.precision")

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# (device type, precision) -> memory format of the model and its batches, as measured
# by benchmarks/bench_precision.py; anything not listed keeps the contiguous layout.
CHANNELS_LAST: set[tuple[str, str]] = set()
# Images per forward pass when evaluating, as measured (benchmarks/README.md). On the CPU
# fp32 throughput is flat from 50 to 2,000 images, so the 1,000 every fp32 result was
# computed with stays (another batch could round a logit differently); bf16 peaks at
# about 100 (1.5-3x its throughput at 1,000), where the bf16 working set stays in cache.
EVAL_BATCH = {("cpu", "bf16"): 100}
DEFAULT_EVAL_BATCH = 1000


def check_supported(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, before any data is read."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision '{precision}' is unknown; choose one of {PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"precision: fp16 needs a CUDA device, but this run is on {device.type}; "
            "use precision: bf16 (autocast on the CPU) or fp32, or set device: cuda"
        )
    if precision == "bf16" and device.type == "cuda":
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name(device)
            raise ConfigError(
                f"precision: bf16 is not supported by {name} (it needs compute capability "
                "8.0, Ampere or later); use precision: fp16 or fp32"
            )
    if precision == "bf16" and device.type == "cpu" and not native_cpu_bf16():
        log.warning(
            "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): bf16 is emulated "
            "and may be slower than fp32"
        )


def native_cpu_bf16() -> bool:
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast(precision: str, device: torch.device):
    """The context a forward pass (and its loss) runs in."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's loss scaler; None where gradients need no scaling."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def memory_format(precision: str, device: torch.device) -> torch.memory_format:
    if (device.type, precision) in CHANNELS_LAST:
        return torch.channels_last
    return torch.contiguous_format


def in_layout(images: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """A batch of images in the run's memory layout (`memory_format`)."""
    if layout == torch.contiguous_format or images.dim() != 4:
        return images
    return images.contiguous(memory_format=layout)


def eval_batch(precision: str, device: torch.device) -> int:
    return EVAL_BATCH.get((device.type, precision), DEFAULT_EVAL_BATCH)
