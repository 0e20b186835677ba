"""Data sources: every data set as uint8 images ``[N, H, W, C]`` and int labels ``[N]``.

Images stay exactly as the data set stores them; ``preprocess`` scales them
for the network (the exported encoder carries the same function). Sources:
TensorFlow Datasets, the standard files under ``--data-dir`` (IDX, SVHN's
``.mat``, ``cifar-10-batches-py``), and scikit-learn's bundled 8x8 digits.
"""

import dataclasses
import gzip
import os
import pickle
import socket

import numpy as np

from softvq_tf.training.errors import DataError

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "svhn": "svhn_cropped", "cifar10": "cifar10"}
_LOCAL_HINT = {
    "mnist": "the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)",
    "fashion_mnist": "the four IDX files (Debian's dataset-fashion-mnist puts them in "
    "/usr/share/datasets/fashion-mnist)",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "cifar10": "the cifar-10-batches-py folder (or its parent)",
}


@dataclasses.dataclass
class Splits:
    """The images a run trains on and the images its probes score.

    ``x_eval``/``y_eval`` are the test split, or the validation split held out
    of train when ``validation_split`` > 0 (a sweep never sees the test split).
    """

    x_train: np.ndarray  # uint8 [N, H, W, C]
    y_train: np.ndarray  # int64 [N]
    x_eval: np.ndarray
    y_eval: np.ndarray


def preprocess(images, pixel_max, pixel_offset):
    """uint8 images -> float32 in ``[offset, 1 + offset]``; works on NumPy and TF tensors."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / pixel_max + pixel_offset


def needs_tensorflow(dataset, data_dir=None):
    """True when ``dataset`` comes through TensorFlow Datasets (no ``--data-dir``)."""
    return dataset != "digits" and data_dir is None


def check_source(dataset, data_dir=None):
    """Fail early, with one line, when ``--data-dir`` cannot hold ``dataset`` (cheap: no file is parsed)."""
    if data_dir is not None and dataset != "digits" and not os.path.isdir(data_dir):
        raise DataError(
            f"--data-dir {data_dir} is not a directory; point it at {_LOCAL_HINT.get(dataset, 'the data files')}"
        )


def load_splits(dataset, data_dir=None, validation_split=0.0, seed=0):
    """Load ``dataset``; with ``validation_split`` the test split is a seeded holdout of train."""
    if dataset == "digits":
        splits = _load_digits()
    elif data_dir is not None:
        splits = _load_local(dataset, data_dir)
    elif dataset in TFDS_NAMES:
        splits = _load_tfds(dataset)
    else:
        raise DataError(f"unknown dataset {dataset!r}; choose one of digits, {', '.join(TFDS_NAMES)}")
    if validation_split:
        order = np.random.default_rng(seed).permutation(len(splits.x_train))
        n_val = int(round(validation_split * len(order)))
        val, train = order[:n_val], order[n_val:]
        splits = Splits(splits.x_train[train], splits.y_train[train], splits.x_train[val], splits.y_train[val])
    return splits


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., None]  # [1797, 8, 8, 1], values 0..16
    order = np.random.default_rng(0).permutation(len(images))  # a fixed train/test split
    test, train = order[:360], order[360:]
    return Splits(
        images[train], digits.target[train].astype(np.int64), images[test], digits.target[test].astype(np.int64)
    )


# --- local files ---------------------------------------------------------------------------


def _load_local(dataset, data_dir):
    if not os.path.isdir(data_dir):
        raise DataError(
            f"--data-dir {data_dir} is not a directory; point it at {_LOCAL_HINT.get(dataset, 'the data files')}"
        )
    if dataset in ("mnist", "fashion_mnist"):
        return Splits(
            _read_idx(_find(data_dir, "train-images-idx3-ubyte", dataset))[..., None],
            _read_idx(_find(data_dir, "train-labels-idx1-ubyte", dataset)).astype(np.int64),
            _read_idx(_find(data_dir, "t10k-images-idx3-ubyte", dataset))[..., None],
            _read_idx(_find(data_dir, "t10k-labels-idx1-ubyte", dataset)).astype(np.int64),
        )
    if dataset == "svhn":
        return Splits(
            *_read_svhn(_find(data_dir, "train_32x32.mat", dataset)),
            *_read_svhn(_find(data_dir, "test_32x32.mat", dataset)),
        )
    if dataset == "cifar10":
        folder = (
            data_dir
            if os.path.exists(os.path.join(data_dir, "test_batch"))
            else os.path.join(data_dir, "cifar-10-batches-py")
        )
        train = [_read_cifar(_find(folder, f"data_batch_{i}", dataset)) for i in range(1, 6)]
        x_test, y_test = _read_cifar(_find(folder, "test_batch", dataset))
        return Splits(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test)
    raise DataError(f"--data-dir is not supported for {dataset!r}")


def _find(folder, name, dataset):
    for candidate in (name, name + ".gz", name.replace("-idx", ".idx")):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise DataError(f"{name}[.gz] not found in {folder}; --data-dir must hold {_LOCAL_HINT[dataset]}")


def _read_idx(path):
    """Parse an IDX file (LeCun's MNIST format), checking magic number and size."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path} ({error}); the file is corrupt or truncated, download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number); download it again")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (incomplete header); download it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is truncated or corrupt: {len(raw) - header} data bytes for shape {shape} "
            f"(expected {expected}); download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _read_svhn(path):
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        images = np.transpose(mat["X"], (3, 0, 1, 2)).astype(np.uint8)  # [32, 32, 3, N] -> [N, 32, 32, 3]
        labels = mat["y"].reshape(-1).astype(np.int64) % 10  # label 10 means digit 0
    except Exception as error:  # scipy raises many types for a broken .mat
        raise DataError(f"cannot read {path} ({type(error).__name__}: {error}); download it again") from None
    return images, labels


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 python batch holds: dicts, lists, bytes and NumPy arrays.

    Unpickling runs whatever callable the file names; a batch needs only
    NumPy's array reconstruction, so any other global is refused.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch never contains it, so the file "
                "is not a genuine batch (possibly hostile); download cifar-10-python.tar.gz again"
            )
        return super().find_class(module, name)


def _read_cifar(path):
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # RGB planes -> HWC
        labels = np.asarray(batch[b"labels"], np.int64)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except Exception as error:
        raise DataError(f"cannot read CIFAR-10 batch {path} ({type(error).__name__}); download it again") from None
    return images, labels


# --- TensorFlow Datasets --------------------------------------------------------------------


def _load_tfds(dataset):
    name = TFDS_NAMES[dataset]
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            f"tensorflow-datasets is not installed; pip install it or pass --data-dir with {_LOCAL_HINT[dataset]}"
        ) from None
    builder = tfds.builder(name)
    if not os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")) and not _online():
        raise DataError(
            f"cannot download {dataset!r} through TensorFlow Datasets (no network); "
            f"pass --data-dir with {_LOCAL_HINT[dataset]}"
        )
    try:
        builder.download_and_prepare()
        train, test = (_as_arrays(builder.as_dataset(split=s, as_supervised=True)) for s in ("train", "test"))
    except Exception as error:  # TFDS raises many types when a download breaks
        raise DataError(
            f"TensorFlow Datasets failed for {dataset!r} ({type(error).__name__}); pass --data-dir with "
            f"{_LOCAL_HINT[dataset]}"
        ) from None
    return Splits(train[0], train[1].astype(np.int64), test[0], test[1].astype(np.int64))


def _as_arrays(dataset, chunk=10_000):
    """``(images, labels)`` NumPy arrays of a TFDS split, read in chunks (its whole-split batch needs one allocation
    of the split's size, which TFDS's test mocks cannot make)."""
    import tensorflow_datasets as tfds

    parts = list(tfds.as_numpy(dataset.batch(chunk)))
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _online(host="storage.googleapis.com", timeout=5.0):
    """True when TFDS's download host answers; a quick check so offline runs fail in seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
