"""The run directory: what a finished run holds, written so a kill never leaves half a file.

runs/<name>/config.json        the resolved RunConfig
           history.json        per-epoch losses and metrics, wall time
           reconstructions.png originals above reconstructions (test split)
           autoencoder.keras   the whole model (reloads with softvq_tf imported)
           encoder/            SavedModel: uint8 images -> z_e (the run is complete once it exists)
           logs/               TensorBoard
           checkpoints/        the best-loss weights (never a NaN state)
           backup/             the last complete backup while training (softvq_tf.training.backup); gone when finished
           .lock               held by the one process that trains or writes the run (RunLock)
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time

from softvq_tf.training.errors import UsageError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside ``path`` (same extension) to write a file or folder into; then move it to
    ``path``, replacing what was there. A kill leaves the old ``path`` or the new one, never half of one."""
    stem, extension = os.path.splitext(path)
    tmp = f"{stem}.tmp-{os.getpid()}{extension}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            _remove(tmp)
        raise
    if os.path.isdir(tmp) and os.path.exists(path):
        old = f"{stem}.old-{os.getpid()}{extension}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def write_atomic(path, data):
    """Write text or bytes to ``path`` through ``atomic_path``, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display here), loaded when a figure is first drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    """Save a matplotlib figure as PNG through a temporary name and a rename, then close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    pyplot().close(fig)


def write_json(path, obj):
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def is_complete(run_dir):
    """A run is complete once its encoder export has been renamed into place."""
    return os.path.isfile(os.path.join(run_dir, "encoder", "saved_model.pb"))


def find_runs(root):
    """Every complete run directly under ``root``, sorted (not the reproduction and sweep folders below it)."""
    if not os.path.isdir(root):
        return []
    paths = (os.path.join(root, name) for name in os.listdir(root))
    return sorted(p for p in paths if is_complete(p) and os.path.isfile(os.path.join(p, "config.json")))


class RunLocked(UsageError):
    """Another process holds the run directory."""


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``RUN/.lock`` while a process trains or writes it.

    The kernel releases a flock when its process exits, however it exits, so a
    lock left by a dead process is free again and is simply taken over. The
    holder writes its pid and host into the file, for the message a second
    process prints. Re-entrant within one process (``train`` inside
    ``run_plan`` takes the lock ``run_plan`` already holds).

    Args:
        run_dir: the run directory (created if missing: the lock lives in it).
    """

    _held = {}  # realpath -> [file, depth], this process's locks

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, ".lock")

    def acquire(self, blocking=False):
        """Take the lock; False if another process holds it (``blocking``: wait for it instead)."""
        key = os.path.realpath(self.path)
        if key in self._held:
            self._held[key][1] += 1
            return True
        os.makedirs(self.run_dir, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._held[key] = [handle, 1]
        return True

    def release(self):
        key = os.path.realpath(self.path)
        entry = self._held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._held[key]
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            entry[0].close()

    def holder(self):
        """``"process PID on HOST since TIME"`` as the holder wrote it."""
        try:
            with open(self.path) as f:
                pid, host, *since = f.read().split()
            return f"process {pid} on {host} since {' '.join(since)}"
        except (OSError, ValueError):
            return "another process"

    def __enter__(self):
        if not self.acquire():
            raise RunLocked(
                f"run {self.run_dir} is being written by {self.holder()}; wait for it to finish, "
                "or choose another --name or --out"
            )
        return self

    def __exit__(self, *exc):
        self.release()
