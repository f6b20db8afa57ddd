"""Give each job its own GPUs, or its own slot of one, on a workstation: a lease held
through lock files.

Snakemake counts `--resources gpu=N` but never says which devices a job may use, so
every job would start on device 0. Wrapped in

    python -m ddrank_steps.runtime.gpu_lease --gpus N [--jobs-per-gpu S] -- COMMAND [ARG...]

a job takes what it asked for where no other lease holds it, sets CUDA_VISIBLE_DEVICES
to its device(s) and replaces itself with COMMAND (exec), so signals, exit status and
logs are COMMAND's own.

Slots: with S jobs per GPU (--jobs-per-gpu, else DDRANK_JOBS_PER_GPU, else 1) every
device has S slots, and N counts slots, as the job's `gpu` resource does for Snakemake
(`--resources gpu=<GPUs x S>`). N below S is a shared job: N slots of one device (a
tiny run takes 1). N a multiple of S is a whole-device job: N/S devices with all their
slots (a torchrun job with one process per GPU). With S = 1 (the default) N is simply a
number of whole GPUs. Any other N is an error. The workflow exports DDRANK_JOBS_PER_GPU
(`resources.jobs_per_gpu`) in every job's shell prefix (`job_policy.shell_prefix`):
unlike a rule's command text, the prefix is no rerun trigger, and how jobs share a GPU
must never rerun one.

The lease is `flock` on lock files in a lock directory. A whole-device job holds its
device's file (`gpu-<id>.lock`) exclusively; a shared job holds it shared plus one slot
file (`gpu-<id>.slot<i>.lock`) exclusively. So whole-device jobs exclude each other and
every shared job on that device, and shared jobs exclude each other only slot by slot,
whatever S the other leases were started with (two runs with another S share a device
up to the larger S). A shared job fills the busiest device that still has a free slot
first, so devices stay whole for the jobs that need whole ones.

The lock file descriptors stay open across the exec, so the lease lasts exactly as long
as COMMAND (or a child that inherited them) runs; the kernel drops the locks when the
process ends, even on SIGKILL, so a killed job never leaves a device or slot marked busy.
A job takes everything it asked for at once or nothing (no job holds one device while it
waits for a second); when too little is free it waits, says so in its log every minute,
and gives up after --timeout seconds.

COMMAND runs unchanged, with no lease, when N is 0, under SLURM (SLURM_JOB_ID is set:
SLURM assigns the devices itself, and S plays no part), or when CUDA_VISIBLE_DEVICES is
already set (the user chose the devices).

The devices shared out: DDRANK_GPUS if set (comma-separated ids or UUIDs as
CUDA_VISIBLE_DEVICES takes them, e.g. "0,1,2,3" or "2,3"; empty means none), else one
per line of `nvidia-smi -L`, else `torch.cuda.device_count()`. Ids count in PCI bus
order, as nvidia-smi shows them (CUDA_DEVICE_ORDER=PCI_BUS_ID unless set otherwise).
Locks live in DDRANK_GPU_LEASE_DIR, default /tmp/ddrank-gpu-leases-<uid>: every ddrank
run of that user on the machine shares them. Not $TMPDIR, which Snakemake sets per job
from its `tmpdir` resource and so may differ between jobs.

Deliberately light: no torch import unless neither DDRANK_GPUS nor nvidia-smi answers.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from ddrank_steps.runtime.job_policy import ENV_JOBS_PER_GPU
from ddrank_steps.runtime.orphans import watch_master

ENV_DEVICES = "DDRANK_GPUS"
ENV_LOCK_DIR = "DDRANK_GPU_LEASE_DIR"
ENV_TIMEOUT = "DDRANK_GPU_LEASE_TIMEOUT"
DEFAULT_TIMEOUT_S = 24 * 3600.0
LOG_EVERY_S = 60.0
SLOT_FILE = re.compile(r"\.slot(\d+)\.lock$")


class LeaseError(Exception):
    """No lease can be had: a request that cannot fit, or nothing free before the timeout."""


@dataclass(frozen=True)
class Request:
    """What one job takes: `whole` devices, or `slots` slots of one device (never both)."""

    whole: int
    slots: int
    jobs_per_gpu: int

    def describe(self) -> str:
        if self.whole:
            return f"{self.whole} free GPU(s)"
        return f"{self.slots} free slot(s) of one GPU ({self.jobs_per_gpu} per GPU)"


def request_of(gpus: int, jobs_per_gpu: int) -> Request:
    """A job's `gpu` resource (in slots of 1/jobs_per_gpu GPU) as whole devices or slots."""
    if jobs_per_gpu < 1:
        raise LeaseError(
            f"--jobs-per-gpu {jobs_per_gpu}: it must be 1 or more (resources.jobs_per_gpu)"
        )
    if gpus % jobs_per_gpu == 0:
        return Request(whole=gpus // jobs_per_gpu, slots=0, jobs_per_gpu=jobs_per_gpu)
    if gpus < jobs_per_gpu:
        return Request(whole=0, slots=gpus, jobs_per_gpu=jobs_per_gpu)
    raise LeaseError(
        f"--gpus {gpus} with {jobs_per_gpu} jobs per GPU is neither a share of one GPU "
        f"(fewer than {jobs_per_gpu} slots) nor whole GPUs (a multiple of {jobs_per_gpu})"
    )


def log(message: str) -> None:
    print(f"gpu_lease: {message}", file=sys.stderr, flush=True)


def passthrough_reason(gpus: int, env) -> str | None:
    """Why COMMAND runs without a lease, or None when it needs one."""
    if gpus == 0:
        return "no GPU asked for"
    if env.get("SLURM_JOB_ID"):
        return "SLURM assigns the devices"
    if "CUDA_VISIBLE_DEVICES" in env:
        return "CUDA_VISIBLE_DEVICES is already set"
    return None


def machine_devices(env) -> tuple[list[str], str]:
    """The device ids this machine's jobs share, and where they came from."""
    if ENV_DEVICES in env:
        return [d.strip() for d in env[ENV_DEVICES].split(",") if d.strip()], ENV_DEVICES
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi:
        try:
            proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:
            count = sum(1 for line in proc.stdout.splitlines() if line.startswith("GPU "))
            return [str(i) for i in range(count)], "nvidia-smi -L"
    try:
        import torch
    except ImportError:
        return [], "no nvidia-smi and no torch"
    return [str(i) for i in range(torch.cuda.device_count())], "torch.cuda.device_count()"


def default_lock_dir(env) -> str:
    tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return env.get(ENV_LOCK_DIR) or os.path.join(tmp, f"ddrank-gpu-leases-{os.getuid()}")


def _safe(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device)


def lock_path(lock_dir: str, device: str) -> str:
    """The device's own lock: exclusive for a whole-device job, shared for a slot job."""
    return os.path.join(lock_dir, f"gpu-{_safe(device)}.lock")


def slot_path(lock_dir: str, device: str, slot: int) -> str:
    return os.path.join(lock_dir, f"gpu-{_safe(device)}.slot{slot}.lock")


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:  # another user's file in a shared lock dir: flock works
        return os.open(path, os.O_RDONLY)  # on a read-only descriptor too


def _lock(path: str, mode: int) -> int | None:
    """A descriptor of `path` locked with `mode` (no waiting), or None when it is held."""
    fd = _open(path)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_held(path: str) -> bool:
    """Whether a lease holds `path` exclusively (a probe: takes nothing it keeps)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _slots_in_use(lock_dir: str, device: str, jobs_per_gpu: int) -> int:
    return sum(_is_held(slot_path(lock_dir, device, i)) for i in range(jobs_per_gpu))


def _take_whole(devices: list[str], count: int, lock_dir: str) -> list[tuple[str, list[int]]]:
    held: list[tuple[str, list[int]]] = []
    for device in devices:
        fd = _lock(lock_path(lock_dir, device), fcntl.LOCK_EX)
        if fd is None:
            continue
        held.append((device, [fd]))
        if len(held) == count:
            return held
    release(held)
    return []


def _take_slots(devices: list[str], request: Request, lock_dir: str) -> list[tuple[str, list[int]]]:
    # busiest first (ties in the order given): shared jobs pack onto devices already in
    # use, leaving the others whole for jobs that need whole devices
    in_use = {d: _slots_in_use(lock_dir, d, request.jobs_per_gpu) for d in devices}
    for device in sorted(devices, key=lambda d: -in_use[d]):
        shared = _lock(lock_path(lock_dir, device), fcntl.LOCK_SH)
        if shared is None:  # a whole-device job has it
            continue
        fds = [shared]
        for slot in range(request.jobs_per_gpu):
            fd = _lock(slot_path(lock_dir, device, slot), fcntl.LOCK_EX)
            if fd is not None:
                fds.append(fd)
                if len(fds) == request.slots + 1:
                    return [(device, fds)]
        release([(device, fds)])
    return []


def release(held: list[tuple[str, list[int]]]) -> None:
    for _, fds in held:
        for fd in fds:
            os.close(fd)


def _holders(devices: list[str], lock_dir: str) -> str:
    """Who holds the busy devices and slots, as the lock files say (pid and command)."""
    parts = []
    for device in devices:
        paths = [lock_path(lock_dir, device)]
        # every slot file of the device, whatever jobs_per_gpu the leases holding it had
        pattern = os.path.join(
            glob.escape(lock_dir), f"gpu-{glob.escape(_safe(device))}.slot*.lock"
        )
        slots = {int(m[1]): p for p in glob.glob(pattern) if (m := SLOT_FILE.search(p))}
        paths += [slots[i] for i in sorted(slots)]
        for path in paths:
            if not _is_held(path):
                continue
            try:
                with open(path) as f:
                    who = f.read().strip() or "unknown holder"
            except OSError:
                continue
            slot = SLOT_FILE.search(path)
            parts.append(f"{device}{f' slot {slot[1]}' if slot else ''} ({who})")
    return ", ".join(parts) or "none"


def acquire(
    request: Request,
    devices: list[str],
    lock_dir: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    poll: float = 1.0,
    holder: str = "",
) -> list[tuple[str, list[int]]]:
    """Take `request` from `devices`, waiting up to `timeout` seconds: one (device id,
    locked descriptors) pair per device leased."""
    if request.whole > len(devices) or (request.slots and not devices):
        asked = request.whole or 1
        raise LeaseError(
            f"{asked} GPU(s) asked for, but this machine has {len(devices)} to share "
            f"({', '.join(devices) or 'none'}); lower resources.train_gpus or "
            f"resources.real_processes, or set {ENV_DEVICES} to the device ids to use"
        )
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    start = time.monotonic()
    next_log = start
    while True:
        if request.whole:
            held = _take_whole(devices, request.whole, lock_dir)
        else:
            held = _take_slots(devices, request, lock_dir)
        if held:
            # say who holds it, for a waiting job's log line: in the device file (whole)
            # or the slot files (shared; the device file is shared with other jobs then)
            exclusive = [fd for _, fds in held for fd in (fds if request.whole else fds[1:])]
            for fd in exclusive:
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
                except OSError:
                    pass
            return held
        now = time.monotonic()
        if now - start >= timeout:
            raise LeaseError(
                f"no {request.describe()} of {len(devices)} after {timeout:g}s; "
                f"busy: {_holders(devices, lock_dir)}"
            )
        if now >= next_log:
            log(
                f"waiting for {request.describe()} of {len(devices)}; "
                f"busy: {_holders(devices, lock_dir)} (locks in {lock_dir})"
            )
            next_log = now + LOG_EVERY_S
        time.sleep(poll)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m ddrank_steps.runtime.gpu_lease",
        usage="%(prog)s --gpus N [--jobs-per-gpu S] [options] -- COMMAND [ARG...]",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--gpus",
        type=int,
        required=True,
        help="the job's gpu resource: slots of 1/S GPU (whole GPUs when S is 1)",
    )
    parser.add_argument(
        "--jobs-per-gpu",
        type=int,
        metavar="S",
        help=f"slots per GPU: jobs that may share one device [{ENV_JOBS_PER_GPU} or 1]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)),
        help=f"seconds to wait for free GPUs [{ENV_TIMEOUT} or {DEFAULT_TIMEOUT_S:g}]",
    )
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between tries")
    parser.add_argument("--lock-dir", help=f"lock directory [{ENV_LOCK_DIR} or /tmp/...]")
    if "--" not in argv:
        parser.error("give the command after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no command after --")
    if args.gpus < 0:
        parser.error("--gpus must be >= 0")
    if args.jobs_per_gpu is None:
        from_env = os.environ.get(ENV_JOBS_PER_GPU, "").strip() or "1"
        if not from_env.isdigit():
            parser.error(f"{ENV_JOBS_PER_GPU}={from_env!r}: give a whole number, 1 or more")
        args.jobs_per_gpu = int(from_env)
    if args.jobs_per_gpu < 1:
        parser.error(f"--jobs-per-gpu {args.jobs_per_gpu}: it must be 1 or more")
    return args, command


def main(argv: list[str] | None = None) -> None:
    watch_master()  # survives the exec: COMMAND (torchrun too) stops with the run
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    if passthrough_reason(args.gpus, env) is None:
        devices, source = machine_devices(env)
        lock_dir = args.lock_dir or default_lock_dir(env)
        try:
            request = request_of(args.gpus, args.jobs_per_gpu)
            held = acquire(request, devices, lock_dir, args.timeout, args.poll, " ".join(command))
        except LeaseError as exc:
            log(f"error: {exc}")
            sys.exit(2)
        for _, fds in held:
            for fd in fds:
                os.set_inheritable(fd, True)  # the lease lasts as long as COMMAND runs
        env["CUDA_VISIBLE_DEVICES"] = ",".join(device for device, _ in held)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        what = (
            f"{request.whole} of {len(devices)} GPUs"
            if request.whole
            else f"{request.slots} of {request.jobs_per_gpu} slots of 1 of {len(devices)} GPUs"
        )
        log(
            f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} "
            f"({what} from {source}; locks in {lock_dir})"
        )
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        log(f"error: cannot run {command[0]}: {exc}")
        sys.exit(127)


if __name__ == "__main__":
    main()
