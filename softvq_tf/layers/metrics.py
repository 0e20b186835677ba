"""Codebook-usage metrics of the quantizers, aggregated over an epoch and over replicas."""

import keras
import tensorflow as tf

# The name under which every softvq_tf Keras object is registered for saving.
PACKAGE = "softvq_tf"


def most_probable_one_hot(probs, dtype=tf.float32):
    """One-hot ``[B, K]`` of each sample's most probable codeword (its nearest, for the hard quantizer).

    Args:
        probs: assignment probabilities ``[B, K]``.
        dtype: dtype of the result.
    """
    return tf.one_hot(tf.argmax(probs, axis=-1), tf.shape(probs)[-1], dtype=dtype)


class _CodebookCounts(keras.metrics.Metric):
    """Accumulates per-codeword mass ``[K]``; summed over batches and replicas."""

    def __init__(self, num_codewords, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_codewords = int(num_codewords)
        self.counts = self.add_variable(
            shape=(self.num_codewords,), initializer="zeros", name="counts", aggregation="sum"
        )

    def reset_state(self):
        self.counts.assign(tf.zeros_like(self.counts))

    def get_config(self):
        return {**super().get_config(), "num_codewords": self.num_codewords}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodebookPerplexity(_CodebookCounts):
    """``exp(-sum_k p_k log p_k)`` of the average assignment probabilities.

    Equals K when every codeword is used equally and 1 when one codeword takes
    everything (as in Sonnet's VQ-VAE, but over the epoch, not one batch).

    Args:
        num_codewords: K.

    Input: ``update_state(probs)`` with assignment probabilities ``[B, K]``.
    """

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(tf.reduce_sum(tf.cast(probs, self.dtype), axis=0))

    def result(self):
        p = self.counts / tf.maximum(tf.reduce_sum(self.counts), 1e-12)
        return tf.exp(-tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p), p)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodewordsInUse(_CodebookCounts):
    """How many codewords were the most probable one for at least one sample.

    Args:
        num_codewords: K.

    Input: ``update_state(probs)`` with assignment probabilities ``[B, K]``.
    """

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(tf.reduce_sum(most_probable_one_hot(probs, self.dtype), axis=0))

    def result(self):
        return tf.reduce_sum(tf.cast(self.counts > 0, self.dtype))
