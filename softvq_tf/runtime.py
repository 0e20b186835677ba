"""Start TensorFlow quietly: no C++ start-up log unless the user asks for it.

TensorFlow's native libraries print several lines while they load (oneDNN,
CUDA stubs, ``failed call to cuInit`` on a machine without a GPU) through
absl before ``TF_CPP_MIN_LOG_LEVEL`` is read, so the variable alone does not
silence them. The command-line tools check their input first, then call
``start_tensorflow``, which loads TensorFlow and initialises its devices with
the process's stderr pointed at /dev/null, then restores it. ``--verbose`` or
``TF_CPP_MIN_LOG_LEVEL=0`` (or 1) keeps the log.
"""

import contextlib
import os


def wants_native_log(verbose=False):
    return verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1")


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


def start_tensorflow(verbose=False):
    """Import TensorFlow and Keras and create the devices, quietly unless ``verbose``; returns ``tf``."""
    if wants_native_log(verbose):
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TensorFlow logs later: warnings and errors only
    with _native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_logical_devices()  # device creation logs too (cuInit)
    return tf
