"""SQ-VAE (Takida et al., ICML 2022): Gaussian stochastic quantization with a learned, self-annealing variance."""

import math

import keras
from keras import ops

from softvq_tf.layers.base import Bottleneck
from softvq_tf.layers.distances import as_rows, codebook_rows, leading_shape_of, nearest_codewords, squared_distances
from softvq_tf.layers.metrics import PACKAGE, CodebookPerplexity, CodewordsInUse
from softvq_tf.layers.rules import check_layer_options


def gumbel_noise(shape, seed, eps=1e-10):
    """Standard Gumbel noise ``-log(-log(U + eps) + eps)``, ``U ~ U[0, 1)``, written as the SQ-VAE authors do."""
    uniform = keras.random.uniform(shape, dtype="float32", seed=seed)
    return -ops.log(-ops.log(uniform + eps) + eps)


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

    The regulariser is the authors' latent loss, per position then averaged over every position:
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
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``.
        head: must be None (the variance is one learned scalar).
        training: whether this is a training call: the relaxed Gumbel-softmax sample, and a temperature step.

    Returns:
        ``[..., d]``, float32: the relaxed sample in training, the nearest codeword at inference
        (``codewords(tokens(z_e))``).

    Example:

    ```python
    import numpy as np
    from softvq_tf import StochasticVectorQuantizer

    sqvae = StochasticVectorQuantizer(64, seed=0)
    z_e = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    relaxed = sqvae(z_e, training=True)  # [16, 8], softmax((logits + gumbel) / tau) @ codebook
    tokens = sqvae.tokens(z_e)  # [16], the nearest codewords
    ```
    """

    reconstruction_objective = "log_sum_squared_error"

    def __init__(
        self,
        num_codewords,
        temperature_decay=1e-5,
        temperature_init=1.0,
        temperature_min=0.0,
        log_variance_init=math.log(10.0),
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
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
        self.perplexity = CodebookPerplexity(self.num_codewords, name=self.metric_name("perplexity"))
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name=self.metric_name("codewords_in_use"))
        self.temperature_metric = keras.metrics.Mean(name=self.metric_name("temperature"))

    def build(self, z_e_shape, head_shape=None):
        super().build(z_e_shape, head_shape)
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
        return 1.0 + ops.exp(self.log_variance)

    def logits(self, z):
        """``-||z - e_k||^2 / (2 sigma^2)``, ``[..., K]``."""
        return -0.5 * squared_distances(z, self.codebook) / self.variance()

    def nearest_codeword_indices(self, z):
        """``argmin_k ||z - e_k||^2``, ``[...]``: the token of each position (the assignment at inference)."""
        return nearest_codewords(z, self.codebook)

    def tokens(self, z_e, head=None):
        """Each position's token ``[...]``: its nearest codeword, the deterministic assignment at inference."""
        return self.nearest_codeword_indices(z_e)

    def codewords(self, tokens):
        """The codewords of ``tokens [...]``, ``[..., d]``: what the decoder gets at inference."""
        return codebook_rows(self.codebook, tokens)

    def temperature(self, step):
        """``max(tau_0 exp(-decay * step), tau_min)`` at training step ``step`` (counted from 1)."""
        return ops.maximum(self.temperature_init * ops.exp(-self.temperature_decay * step), self.temperature_min)

    def latent_loss(self, z_e, z_q, logits):
        """The authors' latent loss, ``mean_n [sum_k p_k log p_k + sum_d (z_e - z_q)^2 / (2 sigma^2)]``."""
        negative_entropy = ops.sum(ops.softmax(logits, axis=-1) * ops.log_softmax(logits, axis=-1), axis=-1)
        distortion = ops.sum(ops.square(z_e - z_q), axis=-1) * 0.5 / self.variance()
        return ops.mean(negative_entropy + distortion)

    def call(self, z_e, head=None, training=None):
        shaped_like = self._float32(z_e, head)[0]
        z_e = as_rows(shaped_like)  # [N, d]
        logits = self.logits(z_e)
        codebook = ops.cast(self.codebook, "float32")
        if training:
            self.step.assign_add(1.0)
            temperature = self.temperature(self.step)
            noise = gumbel_noise(ops.shape(logits), self.seed_generator)
            assignment = ops.softmax((logits + noise) / ops.maximum(temperature, 1e-12), axis=-1)
            usage = ops.softmax(logits, axis=-1)  # the authors' perplexity: of the noiseless probabilities
            self.update_metric(self.temperature_metric, temperature)
        else:
            assignment = ops.one_hot(ops.argmax(logits, axis=-1), self.num_codewords)
            usage = assignment
        z_q = ops.matmul(assignment, ops.transpose(codebook))  # [N, d]
        self._add_regularizer(self.latent_loss(z_e, z_q, logits))
        self.update_metric(self.perplexity, usage)
        self.update_metric(self.codewords_in_use, usage)
        return leading_shape_of(z_q, shaped_like)

    def get_config(self):
        return {
            **super().get_config(),
            "num_codewords": self.num_codewords,
            "temperature_decay": self.temperature_decay,
            "temperature_init": self.temperature_init,
            "temperature_min": self.temperature_min,
            "log_variance_init": self.log_variance_init,
        }
