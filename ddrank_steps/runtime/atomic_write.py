"""Atomic file output.

A killed job must never leave a file that a rerun would trust, so every output
is written to a temporary file in the same directory and renamed into place
(rename is atomic on POSIX within one filesystem), and only while the run that started
the job is alive (`orphans.check_publish`).

`tempfile` creates its files 0600 and its folders 0700 whatever the umask, for privacy
while they are temporary; the renamed result gets the mode a plain `open`/`mkdir` would
have given it, so a shared results directory stays readable to the people the umask
lets in.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ddrank_steps.runtime.orphans import check_publish

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask. POSIX can only read it by setting it, so set it back at once
    (under a lock, so two threads never see the temporary value)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, file_mode())
    try:
        yield tmp_path
        check_publish(target)  # an orphan job's file must never look finished
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch  # local import: keeps this module usable where torch is not needed

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder next to `path`; on success it replaces `path` whole.

    An existing folder at `path` (a stale one from an earlier run, or one left by a
    killed job) is moved aside and deleted only after the new one is in place, so the
    folder is never a mix of old and new files, and a failure leaves no half folder.
    """
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, dir_mode())
    try:
        yield tmp
        check_publish(target)
        old = None
        if target.exists() or target.is_symlink():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in `folder` (None when they can), found by writing one:
    permission bits do not stop root, an immutable flag or a read-only mount does."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=".write-test.", dir=target):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def unwritable_folder(root: str | os.PathLike) -> tuple[Path, str] | None:
    """The first folder in `root` (itself, then its subfolders) where files cannot be
    written, with why; None when every one can. `root` is tried by writing a file (see
    `unwritable_reason`); its subfolders are asked with access(2), which sees permission
    bits (not for root), an immutable flag and a read-only mount without writing in each."""
    if why := unwritable_reason(root):
        return Path(root), why
    for folder, subfolders, _ in os.walk(root):
        for name in subfolders:
            path = Path(folder) / name
            if not os.access(path, os.W_OK | os.X_OK):
                return path, "permission denied, read-only or immutable"
    return None
