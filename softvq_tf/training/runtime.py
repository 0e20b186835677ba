"""Start TensorFlow quietly: no C++ start-up log unless the user asks for it.

TensorFlow's native libraries print several lines while they load (oneDNN,
CUDA stubs, ``failed call to cuInit`` on a machine without a GPU) through
absl before ``TF_CPP_MIN_LOG_LEVEL`` is read, so the variable alone does not
silence them. The command-line tools check their input first, then call
``start_tensorflow``, which loads TensorFlow and initialises its devices with
the process's stderr pointed at /dev/null, then restores it. Afterwards TensorFlow's own log is
limited to fatal messages (``TF_CPP_MIN_LOG_LEVEL=3``: it still logs harmless
"ERROR" lines such as ``NodeDef mentions attribute use_unbounded_threadpool``
when a process trains several models) and its Python logger to errors (no
retracing notices); real failures still raise. ``--verbose`` or
``TF_CPP_MIN_LOG_LEVEL=0`` (or 1) keeps everything.

It also sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) for
scikit-learn's OpenMP threads (k-means, t-SNE; TensorFlow uses none): by
default they spin while they wait for each other, which starves the thread
they wait for whenever anything else shares the cores; the results do not
change (measurements in results/benchmarks.md).
"""

import contextlib
import os


def wants_native_log(verbose=False):
    return verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1")


_quiet = False


@contextlib.contextmanager
def quietly():
    """Silence native stderr for a block that starts more of the runtime (e.g. multi-worker collectives), when quiet."""
    if not _quiet:
        yield
        return
    with _native_stderr_silenced():
        yield


@contextlib.contextmanager
def _native_stderr_silenced():
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_tensorflow(verbose=False, create_devices=True):
    """Import TensorFlow and Keras and create the devices, quietly unless ``verbose``; returns ``tf``.

    ``create_devices=False`` for multi-worker training: collectives must be
    configured before the runtime starts (``make_strategy`` creates it ``quietly``).
    """
    global _quiet
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when scikit-learn's libgomp loads, after this
    if wants_native_log(verbose):
        import tensorflow as tf

        return tf
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        if create_devices:
            tf.config.list_logical_devices()  # device creation logs too (cuInit)
    return tf
