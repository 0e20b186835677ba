"""Quantizers published after the paper, with the paper's bottleneck interface: FSQ and the SQ-VAE.

Both are offered beside the six bottlenecks of ``softvq_tf.layers.bottlenecks``
(they are not in the paper's tables); the rotation trick, an estimator of the
hard quantizer's gradient, lives with that quantizer.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from softvq_tf.layers.bottlenecks import Bottleneck, squared_distances
from softvq_tf.layers.metrics import PACKAGE, CodebookPerplexity, CodewordsInUse
from softvq_tf.options import check_layer_options


@keras.saving.register_keras_serializable(package=PACKAGE)
class FiniteScalarQuantizer(Bottleneck):
    """Finite scalar quantization (Mentzer et al., ICLR 2024): an implicit codebook of ``prod(levels)`` codes.

    ``z_e [B, d]`` is projected to ``len(levels)`` dimensions; dimension ``i``
    is bounded to ``L_i`` levels, ``tanh(z + shift) * h - offset`` with
    ``h = (L_i - 1)(1 - 1e-3) / 2``, ``offset = 0.5`` for even ``L_i`` (else 0)
    and ``shift = tan(offset / h)`` as in the paper's appendix A.1, then
    rounded with a straight-through gradient and scaled to ``[-1, 1]``; a
    second projection maps it back to ``d`` dimensions for the decoder. No
    auxiliary loss. Perplexity and codewords in use are over the implicit codebook.

    Args:
        levels: the number of levels per dimension, e.g. ``(8, 4, 4)`` for 128 codes.
        seed: seed of the projections' Glorot-uniform initialisation.

    Input ``z_e [B, d]`` (no head); output ``[B, d]``.
    """

    def __init__(self, levels=(8, 4, 4), **kwargs):
        super().__init__(**kwargs)
        check_layer_options(levels=levels)
        self.levels = tuple(int(level) for level in levels)
        self.num_codewords = int(np.prod(self.levels))
        self.perplexity = CodebookPerplexity(self.num_codewords, name="perplexity")
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name="codewords_in_use")

    def build(self, z_e_shape):
        d, n = int(z_e_shape[-1]), len(self.levels)
        init = lambda i: keras.initializers.GlorotUniform(None if self.seed is None else self.seed + i)  # noqa: E731
        self.project_in = self.add_weight(shape=(d, n), initializer=init(0), name="project_in")
        self.bias_in = self.add_weight(shape=(n,), initializer="zeros", name="bias_in")
        self.project_out = self.add_weight(shape=(n, d), initializer=init(1), name="project_out")
        self.bias_out = self.add_weight(shape=(d,), initializer="zeros", name="bias_out")

    def bound(self, z):
        """Each dimension squashed into its ``L_i`` levels' range, ``[B, n]``."""
        levels = np.asarray(self.levels, np.float64)
        half = (levels - 1.0) * (1.0 - 1e-3) / 2.0
        offset = np.where(levels % 2 == 0, 0.5, 0.0)
        shift = np.tan(offset / half)
        as_constant = lambda a: tf.constant(a.astype(np.float32))  # noqa: E731
        return tf.tanh(z + as_constant(shift)) * as_constant(half) - as_constant(offset)

    def round_to_levels(self, z):
        """The nearest level of each bounded dimension, scaled to ``[-1, 1]``, with a straight-through gradient."""
        bounded = self.bound(z)
        rounded = bounded + tf.stop_gradient(tf.round(bounded) - bounded)
        return rounded / self._half_width()

    def _half_width(self):
        return tf.constant([float(level // 2) for level in self.levels], tf.float32)

    def code_indices(self, codes):
        """The implicit codebook index of quantized ``codes [B, n]`` (a bijection onto ``[0, prod(levels))``)."""
        half_width = self._half_width()
        digits = tf.cast(tf.round(codes * half_width + half_width), tf.int64)
        basis = tf.constant(np.cumprod((1,) + self.levels[:-1]).astype(np.int64))
        return tf.reduce_sum(digits * basis, axis=-1)

    def code(self, z_e):
        """FSQ's own code of ``z_e [B, d]`` before rounding, scaled as the decoder reads it, ``[B, n]``.

        The probes read this beside ``z_e``: FSQ trains only the ``n`` directions
        of ``z_e`` that ``project_in`` keeps, so ``z_e``'s other ``d - n`` are
        untrained noise to k-means, a handicap the other bottlenecks do not have.
        """
        return self.bound(self._project(z_e)) / self._half_width()

    def _project(self, z_e):
        """``z_e [B, d]`` projected to the ``n`` quantized dimensions, before bounding."""
        return tf.matmul(tf.cast(z_e, tf.float32), self.project_in) + self.bias_in

    def call(self, z_e, head=None, training=None):
        codes = self.round_to_levels(self._project(z_e))  # [B, n]
        probs = tf.one_hot(self.code_indices(codes), self.num_codewords)  # [B, prod(levels)]
        self.perplexity.update_state(probs)
        self.codewords_in_use.update_state(probs)
        return tf.matmul(codes, self.project_out) + self.bias_out

    def get_config(self):
        return {**super().get_config(), "levels": list(self.levels)}


def gumbel_noise(shape, seed, eps=1e-10):
    """Standard Gumbel noise ``-log(-log(U + eps) + eps)``, ``U ~ U[0, 1)``, written as the SQ-VAE authors do."""
    uniform = keras.random.uniform(shape, dtype="float32", seed=seed)
    return -tf.math.log(-tf.math.log(uniform + eps) + eps)


@keras.saving.register_keras_serializable(package=PACKAGE)
class StochasticVectorQuantizer(Bottleneck):
    """SQ-VAE (Takida et al., ICML 2022), Gaussian with one learned variance: the authors' ``gaussian_1``.

    Each code is assigned to codeword ``k`` with logit ``l_k = -||z_e - e_k||^2 / (2 sigma^2)``,
    where ``sigma^2 = 1 + exp(s)`` and ``s`` is learned (starting at ``log 10``;
    the ``1 +`` is the authors' ``gaussian_1`` code). In training the decoder
    gets the relaxed sample ``softmax((l + g) / tau) @ E`` with Gumbel noise ``g``
    and a temperature ``tau = max(tau_0 exp(-decay * step), tau_min)`` that
    anneals with the training step; there is no straight-through copy, the
    gradient flows through the relaxed sample into ``z_e``, the codebook and ``s``.
    At inference the assignment is deterministic: the nearest codeword.

    The regulariser is the authors' latent loss, per sample then averaged over the batch:
    ``sum_k p_k log p_k + sum_d (z_e - z_q)^2 / (2 sigma^2)`` with ``p = softmax(l)``.
    The variance is never annealed by hand: the entropy term widens it, the
    reconstruction narrows it (the paper's self-annealing). That balance holds
    only against the reconstruction term of the authors' objective,
    ``(D / 2) log(sum of squared errors)`` (the decoder variance at its maximum
    likelihood), so ``reconstruction_objective`` asks the ``Autoencoder`` for it.

    Args:
        num_codewords: K.
        temperature_decay: the temperature's decay rate per training step (the authors' 1e-5).
        temperature_init: ``tau_0`` (the authors' 1.0).
        temperature_min: the temperature's floor (the authors' 0).
        log_variance_init: the starting ``s`` (the authors' ``log 10`` for 64-dimensional codes).
        seed: seed of the codebook's standard normal initialisation (the authors' ``randn``) and of the noise.

    Input ``z_e [B, d]`` (no head); output the relaxed sample (training) or the nearest codeword, ``[B, d]``.
    """

    reconstruction_objective = "log_sum_squared_error"

    def __init__(
        self,
        num_codewords,
        temperature_decay=1e-5,
        temperature_init=1.0,
        temperature_min=0.0,
        log_variance_init=math.log(10.0),
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_layer_options(
            num_codewords=num_codewords,
            temperature_decay=temperature_decay,
            temperature_init=temperature_init,
            temperature_min=temperature_min,
        )
        self.num_codewords = int(num_codewords)
        self.temperature_decay = float(temperature_decay)
        self.temperature_init = float(temperature_init)
        self.temperature_min = float(temperature_min)
        self.log_variance_init = float(log_variance_init)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.perplexity = CodebookPerplexity(self.num_codewords, name="perplexity")
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name="codewords_in_use")
        self.temperature_metric = keras.metrics.Mean(name="temperature")

    def build(self, z_e_shape):
        latent_dim = int(z_e_shape[-1])
        self.codebook = self.add_weight(
            shape=(latent_dim, self.num_codewords),
            initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=self.seed),
            name="codebook",
        )
        self.log_variance = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.log_variance_init), name="log_variance"
        )
        # Training steps taken, for the temperature; one count per step on any number of replicas.
        self.step = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="float32",
            trainable=False,
            name="step",
            aggregation="only_first_replica",
        )

    def variance(self):
        """``sigma^2 = 1 + exp(s)``."""
        return 1.0 + tf.exp(self.log_variance)

    def logits(self, z):
        """``-||z - e_k||^2 / (2 sigma^2)``, ``[B, K]``."""
        return -0.5 * squared_distances(z, self.codebook) / self.variance()

    def temperature(self, step):
        """``max(tau_0 exp(-decay * step), tau_min)`` at training step ``step`` (counted from 1)."""
        return tf.maximum(self.temperature_init * tf.exp(-self.temperature_decay * step), self.temperature_min)

    def latent_loss(self, z_e, z_q, logits):
        """The authors' latent loss, ``mean_b [sum_k p_k log p_k + sum_d (z_e - z_q)^2 / (2 sigma^2)]``."""
        negative_entropy = tf.reduce_sum(tf.nn.softmax(logits) * tf.nn.log_softmax(logits), axis=-1)
        distortion = tf.reduce_sum(tf.square(z_e - z_q), axis=-1) * 0.5 / self.variance()
        return tf.reduce_mean(negative_entropy + distortion)

    def call(self, z_e, head=None, training=None):
        z_e = tf.cast(z_e, tf.float32)
        logits = self.logits(z_e)
        codebook = tf.cast(self.codebook, tf.float32)
        if training:
            self.step.assign_add(1.0)
            temperature = self.temperature(self.step)
            noise = gumbel_noise(tf.shape(logits), self.seed_generator)
            assignment = tf.nn.softmax((logits + noise) / tf.maximum(temperature, 1e-12), axis=-1)
            usage = tf.nn.softmax(logits)  # the authors' perplexity: of the noiseless probabilities
            self.temperature_metric.update_state(temperature)
        else:
            assignment = tf.one_hot(tf.argmax(logits, axis=-1), self.num_codewords)
            usage = assignment
        z_q = tf.matmul(assignment, codebook, transpose_b=True)  # [B, d]
        self._add_regularizer(self.latent_loss(z_e, z_q, logits))
        self.perplexity.update_state(usage)
        self.codewords_in_use.update_state(usage)
        return z_q

    def get_config(self):
        return {
            **super().get_config(),
            "num_codewords": self.num_codewords,
            "temperature_decay": self.temperature_decay,
            "temperature_init": self.temperature_init,
            "temperature_min": self.temperature_min,
            "log_variance_init": self.log_variance_init,
        }
