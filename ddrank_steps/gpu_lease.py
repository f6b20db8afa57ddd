"""Give each job its own GPUs on a workstation: a lease held through lock files.

Snakemake counts `--resources gpu=N` but never says which devices a job may use, so
every job would start on device 0. Wrapped in

    python -m ddrank_steps.gpu_lease --gpus N -- COMMAND [ARG...]

a job takes N devices that no other lease holds, sets CUDA_VISIBLE_DEVICES to them and
replaces itself with COMMAND (exec), so signals, exit status and logs are COMMAND's own.

The lease is an exclusive `flock` on one file per device in a lock directory. The lock
file descriptors stay open across the exec, so the devices stay leased exactly as long
as COMMAND (or a child that inherited them) runs; the kernel drops the locks when the
process ends, even on SIGKILL, so a killed job never leaves a device marked busy.
Devices are taken all at once or not at all (no job holds one device while it waits
for a second); when too few are free the job waits, says so in its log every minute,
and gives up after --timeout seconds.

COMMAND runs unchanged, with no lease, when N is 0, under SLURM (SLURM_JOB_ID is set:
SLURM assigns the devices itself), or when CUDA_VISIBLE_DEVICES is already set (the
user chose the devices).

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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ENV_DEVICES = "DDRANK_GPUS"
ENV_LOCK_DIR = "DDRANK_GPU_LEASE_DIR"
ENV_TIMEOUT = "DDRANK_GPU_LEASE_TIMEOUT"
DEFAULT_TIMEOUT_S = 24 * 3600.0
LOG_EVERY_S = 60.0


class LeaseError(Exception):
    """No lease can be had: too many GPUs asked for, or none free before the timeout."""


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


def lock_path(lock_dir: str, device: str) -> str:
    return os.path.join(lock_dir, "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock")


def _try_take(devices: list[str], gpus: int, lock_dir: str) -> list[tuple[str, int]] | None:
    """All `gpus` free devices as (id, locked fd), or None (and nothing held)."""
    held: list[tuple[str, int]] = []
    for device in devices:
        path = lock_path(lock_dir, device)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:  # another user's file in a shared lock dir: flock works
            fd = os.open(path, os.O_RDONLY)  # on a read-only descriptor too
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held.append((device, fd))
        if len(held) == gpus:
            return held
    for _, fd in held:
        os.close(fd)
    return None


def _holders(devices: list[str], lock_dir: str) -> str:
    """Who holds the busy devices, as the lock files say (pid and command)."""
    parts = []
    for device in devices:
        try:
            with open(lock_path(lock_dir, device)) as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # free: not a holder
        except BlockingIOError:
            with open(lock_path(lock_dir, device)) as f:
                parts.append(f"{device} ({f.read().strip() or 'unknown holder'})")
        except OSError:
            continue
    return ", ".join(parts) or "none"


def acquire(
    gpus: int,
    devices: list[str],
    lock_dir: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    poll: float = 1.0,
    holder: str = "",
) -> list[tuple[str, int]]:
    """Lock `gpus` of `devices`, waiting up to `timeout` seconds; (id, fd) pairs."""
    if gpus > len(devices):
        raise LeaseError(
            f"{gpus} GPU(s) asked for, but this machine has {len(devices)} to share "
            f"({', '.join(devices) or 'none'}); lower resources.train_gpus, or set "
            f"{ENV_DEVICES} to the device ids to use"
        )
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    start = time.monotonic()
    next_log = start
    while True:
        held = _try_take(devices, gpus, lock_dir)
        if held is not None:
            for _, fd in held:  # say who holds it, for a waiting job's log line
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
                except OSError:
                    pass
            return held
        now = time.monotonic()
        if now - start >= timeout:
            raise LeaseError(
                f"no {gpus} free GPU(s) of {len(devices)} after {timeout:g}s; "
                f"busy: {_holders(devices, lock_dir)}"
            )
        if now >= next_log:
            log(
                f"waiting for {gpus} free GPU(s) of {len(devices)}; "
                f"busy: {_holders(devices, lock_dir)} (locks in {lock_dir})"
            )
            next_log = now + LOG_EVERY_S
        time.sleep(poll)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m ddrank_steps.gpu_lease",
        usage="%(prog)s --gpus N [options] -- COMMAND [ARG...]",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--gpus", type=int, required=True, help="GPUs the command needs")
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
    return args, command


def main(argv: list[str] | None = None) -> None:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    if passthrough_reason(args.gpus, env) is None:
        devices, source = machine_devices(env)
        lock_dir = args.lock_dir or default_lock_dir(env)
        try:
            held = acquire(args.gpus, devices, lock_dir, args.timeout, args.poll, " ".join(command))
        except LeaseError as exc:
            log(f"error: {exc}")
            sys.exit(2)
        for _, fd in held:
            os.set_inheritable(fd, True)  # the lease lasts as long as COMMAND runs
        env["CUDA_VISIBLE_DEVICES"] = ",".join(device for device, _ in held)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        log(
            f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} "
            f"({args.gpus} of {len(devices)} GPUs from {source}; locks in {lock_dir})"
        )
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        log(f"error: cannot run {command[0]}: {exc}")
        sys.exit(127)


if __name__ == "__main__":
    main()
