"""Atomic file publication shared by every writer (stores, checkpoints, screening output)."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def default_file_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would give (mkstemp's 0o600 would hide shared files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give a finished temporary file normal permissions and rename it into place atomically."""
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, final)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class LockedError(OSError):
    """Another process holds the lock of an output (a second run on the same folder would do work twice)."""


@contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created when missing; it records the holder's pid) for the
    block. A second process asking for it is refused at once with :class:`LockedError` naming the folder, ``what``
    runs there and the holder's pid; the lock goes with the process (a killed run leaves nothing to clean up).
    On a file system without locks (``flock`` fails otherwise) a warning says so and the block runs unlocked."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, default_file_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise LockedError(
                f"{path.parent} is in use by another {what} (pid {holder}, lock {path.name}); "
                "wait for it to finish or stop it"
            ) from None
        except OSError as exc:
            warnings.warn(f"cannot lock {path} ({exc}): make sure no other {what} uses {path.parent}", stacklevel=3)
            locked = False
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
