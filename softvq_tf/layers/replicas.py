"""Sums and gathers over ``tf.distribute`` replicas: the one place the layers touch TensorFlow.

Under a TensorFlow strategy each replica sees its own slice of the batch, and
the codebook upkeep and the loss scaling need the whole batch. The other Keras
backends train on one process here (a JAX or PyTorch data-parallel setup
shards arrays itself), so these are the identity there and TensorFlow is never
imported.
"""

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
else:
    tf = None


def all_replicas(value, gather=False):
    """``value`` summed (or, with ``gather``, concatenated along axis 0) over the replicas in sync."""
    if tf is None:
        return value
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    if gather:
        return context.all_gather(value, axis=0)
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replicas_in_sync():
    """How many replicas share the global batch: the current ``tf.distribute`` strategy's count, else 1."""
    return 1 if tf is None else tf.distribute.get_strategy().num_replicas_in_sync
