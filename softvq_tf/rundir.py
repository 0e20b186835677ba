"""The run directory: what a finished run holds, written so a kill never leaves half a file.

    runs/<name>/config.json        the resolved RunConfig
               history.json        per-epoch losses and metrics, wall time
               reconstructions.png originals above reconstructions (test split)
               autoencoder.keras   the whole model (reloads with softvq_tf imported)
               encoder/            SavedModel: uint8 images -> z_e (the run is complete once it exists)
               logs/               TensorBoard
               checkpoints/        the best-loss weights (never a NaN state)
               backup/             BackupAndRestore state while training; gone when finished
"""

import json
import os


def write_atomic(path, data):
    """Write text or bytes to ``path`` through a temporary name and a rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_figure(fig, path, dpi=100):
    """Save a matplotlib figure as PNG through a temporary name and a rename, then close it."""
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)


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
