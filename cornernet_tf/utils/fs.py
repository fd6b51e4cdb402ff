"""Atomic writes: a reader (TF Serving, a resumed run, a user) sees the old file or
the new one, never half of one.

Every file the package writes goes through here: the data is written to a
temporary name in the destination folder, flushed to disk, given the usual
permissions (`mkstemp` creates 0600) and renamed over the destination with
`os.replace`, which is atomic on POSIX file systems and on NTFS. Temporary names
start with a dot and hold ".incomplete-", so TF Serving and glob patterns such
as `*.keras` ignore them.

A writer killed with SIGKILL cannot remove its temporary. Each temporary is
therefore locked (`flock`) while it is written, and the first atomic write of a
process into a folder removes the temporaries there that nobody holds: those
of killed writers. Only names of this module's pattern are touched; on systems
without `fcntl` (Windows) nothing is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "not_a_file",
    "remove_stale_temporaries",
]

try:
    import fcntl
except ImportError:  # Windows: temporaries are never swept
    fcntl = None

# `.<name>.incomplete-<mkstemp's 8 characters>[.<suffix>]`
_TEMPORARY = re.compile(r"\..+\.incomplete-[a-z0-9_]{8}(\.[A-Za-z0-9]+)?")
# A temporary younger than this may be between its creation and its lock.
_SETTLE_SECONDS = 2.0
_swept: set[str] = set()


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why `path` is not a regular file, in words for an error message; None when it is one.

    Distinguishes a missing path from a folder (and a TensorFlow SavedModel
    folder), a named pipe, a device (e.g. a link to /dev/zero) or a socket,
    whose reading would block or never end.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if os.path.islink(path) else "not found"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "is a SavedModel folder (for TF Serving), not a file"
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is not a regular file"


def _lock(fd: int) -> bool:
    """Takes the exclusive lock of `fd` without waiting; False when another holds it."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Removes the temporaries of killed writers in `directory`; returns their paths.

    A temporary of this module (file or staging folder) is stale when no
    process holds its lock: its writer died before renaming or removing it.
    Temporaries of live writers, recent ones, anything but regular files and
    folders (symlinks, FIFOs, devices) and every other name are left.
    """
    removed = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMPORARY.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            # Only regular files and folders are this module's: opening a FIFO
            # or a device of the same name could block or have side effects.
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                continue
            if time.time() - info.st_mtime < _SETTLE_SECONDS:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            # Swapped for something else between the stat and the open: leave it.
            if stat.S_IFMT(os.fstat(fd).st_mode) != stat.S_IFMT(info.st_mode):
                continue
            if not _lock(fd):
                continue  # its writer is alive
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.remove(entry.path)
            removed.append(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _sweep_once(directory: str) -> None:
    if directory not in _swept:
        _swept.add(directory)
        remove_stale_temporaries(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path beside `path` that replaces `path` when the block succeeds.

    For writers that want a file name rather than a stream (`model.save`,
    `savefig`). On an exception the temporary file is removed and `path` is
    left as it was.

    Args:
        path: the destination file; its folder is created if needed.
        suffix: suffix of the temporary name (Keras requires ".keras").

    Yields:
        The temporary file's path (an empty file that the block overwrites).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _sweep_once(directory)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.incomplete-", suffix=suffix
    )
    _lock(fd)  # held until the rename: the temporary is not stale
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> None:
    """Writes `value` as JSON (newline-terminated) to `path` atomically.

    Values JSON cannot represent (numpy scalars, paths) are written with `str`.
    """
    atomic_write_text(path, json.dumps(value, indent=indent, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, prefix: str | None = None) -> Iterator[Path]:
    """A staging folder beside `path`, renamed to `path` when the block succeeds.

    `path` must not exist. The staging name starts with a dot and holds
    "incomplete", so a watcher that takes numeric folder names (TF Serving's
    versions) never sees it. On an exception the staging folder is removed.

    Args:
        path: the final folder.
        prefix: prefix of the staging name; default `.<name>.incomplete-`.

    Yields:
        The staging folder.

    Raises:
        FileExistsError: `path` exists (checked before and at the rename).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{str(path)!r} already exists.")
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(str(path.parent.resolve()))
    staging = Path(tempfile.mkdtemp(prefix=prefix or f".{path.name}.incomplete-", dir=path.parent))
    fd = os.open(staging, os.O_RDONLY)
    _lock(fd)  # held until the rename: the staging folder is not stale
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, path)  # fails if `path` appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(fd)
