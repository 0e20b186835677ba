"""Every private TensorFlow/Keras API softvq_tf relies on, in one place, with why.

These are not covered by TensorFlow's or Keras's compatibility promises, so
``requirements.txt`` pins the versions they were checked against (TensorFlow
2.21, Keras 3.15) and ``tests/test_compat.py`` fails loudly, naming the API,
if an upgrade removes one.

Each import is inside the function that needs it: the layers and the model
also run on Keras's JAX and PyTorch backends, where TensorFlow is absent.
"""


def disable_op_determinism():
    """``tf.config.experimental.enable_op_determinism`` has no public inverse.

    Needed because Keras silently drops ``jit_compile`` while op determinism is on,
    and a process (tests, reproduce) trains XLA and non-XLA runs one after another.
    """
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


def unmapped_in_stateless_scope(variable):
    """Whether ``variable`` has no value in the current ``keras.StatelessScope`` (JAX's stateless steps).

    Keras 3.15's JAX trainer maps a layer's trainable and non-trainable variables
    into its stateless forward pass, but not the metrics a layer updates in
    ``call`` (keras-team/keras#21639): reading one there fails. The bottlenecks
    defer such an update until ``Autoencoder.compute_loss``, whose scope maps them.
    """
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    scope = get_stateless_scope()
    return scope is not None and scope.get_current_value(variable) is None


def in_stateless_scope():
    """Whether the code runs inside a ``keras.StatelessScope`` (JAX's stateless training step, ``stateless_call``).

    Keras 3.15 exports the scope but not this query; the codebook upkeep needs
    it to refuse what a stateless call cannot return (a trainable variable's assignment).
    """
    from keras.src.backend.common.stateless_scope import in_stateless_scope as query

    return query()


def mapped_in_stateless_scope(variable):
    """Whether ``variable`` has a value in the current ``keras.StatelessScope`` (False outside any scope).

    The twin of ``unmapped_in_stateless_scope``: a layer's deferred metric
    updates can land in a scope that maps the metrics (Keras's ``compute_metrics``).
    """
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    scope = get_stateless_scope()
    return scope is not None and scope.get_current_value(variable) is not None


def in_multi_worker_mode(strategy):
    """Whether a ``MultiWorkerMirroredStrategy`` really spans several workers.

    Keras 3.15 reduces multi-worker step logs with a MEAN over axis 0, which fails
    on scalars; ``Autoencoder.train_step`` reshapes them only in that mode.
    """
    return strategy.extended._in_multi_worker_mode()


def multi_worker_logs(logs):
    """A train step's logs, each value given an axis 0 when a multi-worker strategy spans several workers.

    Keras reduces multi-worker step logs with a MEAN over axis 0, which fails on
    scalars. Epoch logs are read from the (cross-replica) metrics and stay scalars.
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and in_multi_worker_mode(strategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def adam_slots(optimizer, variable):
    """The first and second moment slots of ``variable`` in a Keras Adam (``FusedAdam`` updates them in place)."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def set_initial_epoch(model, epoch):
    """Make ``model.fit`` start at ``epoch``: Keras 3.15's fit reads ``model._initial_epoch`` after the callbacks'
    ``on_train_begin``, which is how its own ``BackupAndRestore`` resumes (``training.backup`` does the same)."""
    model._initial_epoch = epoch
