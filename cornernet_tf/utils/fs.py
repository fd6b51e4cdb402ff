"""Atomic writes: a reader (TF Serving, a resumed run, a user) sees the old file or
the new one, never half of one.

Every file the package writes goes through here: the data is written to a
temporary name in the destination folder, flushed to disk, given the usual
permissions (`mkstemp` creates 0600) and renamed over the destination with
`os.replace`, which is atomic on POSIX file systems and on NTFS. Temporary names
start with a dot, so TF Serving and glob patterns such as `*.keras` ignore them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]


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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
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
    staging = Path(tempfile.mkdtemp(prefix=prefix or f".{path.name}.incomplete-", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, path)  # fails if `path` appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
