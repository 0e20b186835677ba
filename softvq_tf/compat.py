"""Every private TensorFlow/Keras API softvq_tf relies on, in one place, with why.

These are not covered by TensorFlow's or Keras's compatibility promises, so
``requirements.txt`` pins the versions they were checked against (TensorFlow
2.21, Keras 3.15) and ``tests/test_compat.py`` fails loudly, naming the API,
if an upgrade removes one.
"""

from tensorflow.python.framework import config as tf_config


def disable_op_determinism():
    """``tf.config.experimental.enable_op_determinism`` has no public inverse.

    Needed because Keras silently drops ``jit_compile`` while op determinism is on,
    and a process (tests, reproduce) trains XLA and non-XLA runs one after another.
    """
    tf_config.disable_op_determinism()


def in_multi_worker_mode(strategy):
    """Whether a ``MultiWorkerMirroredStrategy`` really spans several workers.

    Keras 3.15 reduces multi-worker step logs with a MEAN over axis 0, which fails
    on scalars; ``Autoencoder.train_step`` reshapes them only in that mode.
    """
    return strategy.extended._in_multi_worker_mode()


def adam_slots(optimizer, variable):
    """The first and second moment slots of ``variable`` in a Keras Adam (``FusedAdam`` updates them in place)."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def set_initial_epoch(model, epoch):
    """Make ``model.fit`` start at ``epoch``: Keras 3.15's fit reads ``model._initial_epoch`` after the callbacks'
    ``on_train_begin``, which is how its own ``BackupAndRestore`` resumes (``training.backup`` does the same)."""
    model._initial_epoch = epoch
