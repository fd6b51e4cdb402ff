"""The model directory of a run: local paths only, one writer at a time, a restart on request.

* `local_model_dir_problem`: `gs://`, `s3://` and other URL-style paths are
  refused before any work. Checkpoints, the TensorBoard logs and the atomic
  file writes of the package use local file system calls (`os.replace`,
  `flock`), which object stores do not offer; a bucket mounted as a folder
  (gcsfuse, s3fs, a network file system) is a local path and works.
* `ModelDirLock`: `<model_dir>/train.lock` names the process training into
  the folder (PID, host, start time). A second trainer is refused with those
  names. The lock is an `flock` on that file, which the kernel releases when
  its holder dies, so the lock of a killed run (SIGKILL, power loss) is free
  and the next run takes it over; where `flock` is not available, a lock of
  a process that no longer exists on this host is taken over.
* `move_previous_run`: `train(..., restart=True)` (`cornernet-train
  --restart`) moves an earlier run's files into `replaced-<UTC time>/`
  instead of deleting or overwriting them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import time

try:
    import fcntl
except ImportError:  # Windows: the process-id test alone
    fcntl = None

from cornernet_tf.training.errors import SetupError

logger = logging.getLogger(__name__)

__all__ = [
    "LOCK_NAME",
    "RUN_FILES",
    "ModelDirLock",
    "local_model_dir_problem",
    "move_previous_run",
]

LOCK_NAME = "train.lock"
# What a run writes into its model directory (`cornernet_tf.training`'s layout).
RUN_FILES = (
    "checkpoints",
    "logs",
    "model.keras",
    "best.keras",
    "best.json",
    "summary.json",
    "config.yaml",
    "classes.json",
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def local_model_dir_problem(model_dir: str | os.PathLike) -> str | None:
    """Why `model_dir` cannot hold a run, or None when it is a local path.

    Args:
        model_dir: the `--model-dir` value.

    Returns:
        A one-line message naming the path and the fix, or None.
    """
    path = os.fspath(model_dir)
    if _URL.match(path):
        scheme = path.split("://", 1)[0]
        return (
            f"--model-dir {path}: {scheme}:// paths are not supported; the model directory must "
            "be a local or mounted folder (e.g. a bucket mounted with gcsfuse or s3fs); train "
            "into a local folder and copy it to the bucket afterwards."
        )
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class ModelDirLock:
    """The exclusive right to write into a model directory, held while a run trains.

    Args:
        model_dir: the run's directory (created if needed).
    """

    def __init__(self, model_dir: str | os.PathLike):
        self.model_dir = os.fspath(model_dir)
        self.path = os.path.join(self.model_dir, LOCK_NAME)
        self._fd: int | None = None

    def __enter__(self) -> ModelDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _read_holder(self, fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            holder = json.loads(os.read(fd, 4096).decode("utf-8"))
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _refuse(self, holder: dict) -> SetupError:
        pid, host = holder.get("pid", "?"), holder.get("host", "?")
        started = holder.get("started", "?")
        return SetupError(
            f"{self.path}: another training run (PID {pid} on host {host}, started {started}) "
            f"is writing into --model-dir {self.model_dir}; wait for it to end or stop it, or "
            "use another --model-dir. If that process is gone (another host's run that was "
            "killed), delete the lock file."
        )

    def acquire(self) -> None:
        """Takes the lock, or takes over the lock of a dead process.

        Raises:
            SetupError: another live process holds the lock (its PID and host
                are named), or the directory cannot be written.
        """
        try:
            os.makedirs(self.model_dir, exist_ok=True)
            for _ in range(10):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    if self._lock(fd):
                        self._fd = fd
                        return
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)  # the file was replaced while it was locked: again
        except OSError as e:
            raise SetupError(
                f"--model-dir {self.model_dir}: cannot write there ({e.strerror or e}); pass a "
                "writable folder."
            ) from None
        raise SetupError(f"{self.path}: cannot take the lock; the file keeps changing.")

    def _lock(self, fd: int) -> bool:
        """Locks the open lock file `fd`; False when the path now names another file."""
        holder = self._read_holder(fd)
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refuse(holder) from None
                # ENOLCK / EOPNOTSUPP: a file system without locks; the PID test decides.
        if not locked and holder and holder.get("pid") != os.getpid():
            same_host = holder.get("host") == socket.gethostname()
            if not same_host or _pid_alive(int(holder.get("pid", 0))):
                raise self._refuse(holder)
        # A previous holder may have removed the file after our open: the lock
        # must be on the file the path names now.
        try:
            if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                return False
        except FileNotFoundError:
            return False
        if holder:
            logger.info(
                "took over the lock of a run that ended without releasing it (PID %s on %s)",
                holder.get("pid", "?"),
                holder.get("host", "?"),
            )
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        os.fsync(fd)
        return True

    def release(self) -> None:
        """Removes the lock file and releases the lock (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)  # while still locked: no one else holds this inode
        os.close(self._fd)
        self._fd = None


def move_previous_run(model_dir: str | os.PathLike) -> str | None:
    """Moves an earlier run's files into `model_dir/replaced-<UTC time>/`.

    Args:
        model_dir: the run's directory (its lock held).

    Returns:
        The folder the files were moved to, or None when there were none.
    """
    model_dir = os.fspath(model_dir)
    present = [name for name in RUN_FILES if os.path.lexists(os.path.join(model_dir, name))]
    if not present:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = os.path.join(model_dir, f"replaced-{stamp}")
    suffix = 1
    while os.path.lexists(target):
        suffix += 1
        target = os.path.join(model_dir, f"replaced-{stamp}-{suffix}")
    os.makedirs(target)
    for name in present:
        os.replace(os.path.join(model_dir, name), os.path.join(target, name))
    logger.info("--restart: moved the previous run's %s to %s", ", ".join(present), target)
    return target
