"""Codebook-usage metrics of the quantizers, aggregated over an epoch and over replicas.

They count every position: assignment probabilities ``[..., K]`` of any
leading shape are read as ``N`` rows of ``K``.
"""

import keras
from keras import ops

# The name under which every softvq_tf Keras object is registered for saving.
PACKAGE = "softvq_tf"


def most_probable_one_hot(probs, dtype="float32"):
    """One-hot ``[..., K]`` of each position's most probable codeword (its nearest, for the hard quantizer).

    Args:
        probs: assignment probabilities ``[..., K]``.
        dtype: dtype of the result.
    """
    return ops.one_hot(ops.argmax(probs, axis=-1), ops.shape(probs)[-1], dtype=dtype)


class _CodebookCounts(keras.metrics.Metric):
    """Accumulates per-codeword mass ``[K]``; summed over batches, positions and replicas."""

    def __init__(self, num_codewords, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_codewords = int(num_codewords)
        self.counts = self.add_variable(
            shape=(self.num_codewords,), initializer="zeros", name="counts", aggregation="sum"
        )

    def _rows(self, probs):
        """``probs [..., K]`` as ``[N, K]`` in the metric's dtype."""
        return ops.reshape(ops.cast(probs, self.dtype), (-1, self.num_codewords))

    def reset_state(self):
        self.counts.assign(ops.zeros(self.counts.shape, self.counts.dtype))

    def get_config(self):
        return {**super().get_config(), "num_codewords": self.num_codewords}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodebookPerplexity(_CodebookCounts):
    """``exp(-sum_k p_k log p_k)`` of the average assignment probabilities.

    Equals K when every codeword is used equally and 1 when one codeword takes
    everything (as in Sonnet's VQ-VAE, but over the epoch, not one batch).

    Args:
        num_codewords: K.

    Input: ``update_state(probs)`` with assignment probabilities ``[..., K]``.
    """

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(ops.sum(self._rows(probs), axis=0))

    def result(self):
        p = self.counts / ops.maximum(ops.sum(self.counts), 1e-12)
        return ops.exp(-ops.sum(ops.where(p > 0, p * ops.log(ops.maximum(p, 1e-30)), 0.0)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodewordsInUse(_CodebookCounts):
    """How many codewords were the most probable one for at least one position.

    Args:
        num_codewords: K.

    Input: ``update_state(probs)`` with assignment probabilities ``[..., K]``.
    """

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(ops.sum(most_probable_one_hot(self._rows(probs), self.dtype), axis=0))

    def result(self):
        return ops.sum(ops.cast(self.counts > 0, self.dtype))
