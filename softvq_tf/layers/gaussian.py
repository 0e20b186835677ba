"""The bottlenecks that add noise to the code: the VAE and beta-VAE (``GaussianBottleneck``) and information dropout.

Both read a head as wide as the code (``[..., d]``) and give the decoder the
noiseless ``z_e`` at inference.
"""

import keras
from keras import ops

from softvq_tf.layers.base import Bottleneck
from softvq_tf.layers.metrics import PACKAGE
from softvq_tf.layers.rules import check_layer_options


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianBottleneck(Bottleneck):
    """VAE / beta-VAE: ``z = mu + exp(logvar / 2) * eps`` with ``kl_weight * KL(q || N(0, I))``.

    ``z_e`` is the posterior mean ``mu``; the head is ``log sigma^2``. At
    inference the decoder gets the mean.

    Args:
        kl_weight: weight of the KL term (1 for the VAE, the paper's beta for beta-VAE).
        seed: seed of the sampling noise.
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the posterior mean ``mu [..., d]``.
        head: ``log sigma^2 [..., d]``, a second linear head of the encoder as wide as the code; required.
        training: whether this is a training call (the sample; otherwise the mean).

    Returns:
        ``z [..., d]``, float32: a sample in training, ``mu`` at inference. The KL term, summed over
        ``d`` and averaged over every position, is added with ``add_loss``.

    Example:

    ```python
    import numpy as np
    from softvq_tf import GaussianBottleneck

    vae = GaussianBottleneck(kl_weight=20.0, seed=0)  # the paper's beta-VAE on MNIST
    mu, log_variance = np.zeros((4, 8), "float32"), np.zeros((4, 8), "float32")
    z = vae(mu, log_variance, training=True)  # [4, 8], mu + sigma * eps
    kl = vae.losses[0]  # 0 here: the posterior is the prior
    ```
    """

    def __init__(self, kl_weight=1.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_layer_options(kl_weight=kl_weight)
        self.kl_weight = float(kl_weight)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return latent_dim

    @staticmethod
    def kl_divergence(mu, logvar):
        """Closed-form ``KL(N(mu, exp(logvar)) || N(0, I))`` per position, ``[...]``."""
        return -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar), axis=-1)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        self._add_regularizer(self.kl_weight * ops.mean(self.kl_divergence(z_e, head)))
        if not training:
            return z_e
        eps = keras.random.normal(ops.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        return z_e + ops.exp(0.5 * head) * eps

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InformationDropout(Bottleneck):
    """Information dropout (Achille & Soatto): ``z = z_e * exp(alpha * eps)``.

    ``alpha = alpha_max * sigmoid(head)`` lies in ``(0, alpha_max]``; the
    regulariser is ``weight * mean(-log(alpha / alpha_max + 1e-3))`` as in the
    original notebooks. At inference the decoder gets ``z_e``.

    Args:
        alpha_max: the largest dropout rate (0.7 in the paper).
        weight: the regulariser's weight (0.5 in the paper).
        seed: seed of the multiplicative noise.
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``.
        head: the rate logits ``[..., d]``, a second linear head of the encoder as wide as the code; required.
        training: whether this is a training call (the noise only then).

    Returns:
        ``z [..., d]``, float32: ``z_e * exp(alpha * eps)`` in training, ``z_e`` at inference.

    Example:

    ```python
    import numpy as np
    from softvq_tf import InformationDropout

    dropout = InformationDropout(alpha_max=0.7, weight=0.5, seed=0)
    z_e, rate_logits = np.ones((4, 8), "float32"), np.zeros((4, 8), "float32")
    z = dropout(z_e, rate_logits, training=True)  # [4, 8], log-normal multiplicative noise
    ```
    """

    def __init__(self, alpha_max=0.7, weight=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_layer_options(alpha_max=alpha_max)
        self.alpha_max = float(alpha_max)
        self.weight = float(weight)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return latent_dim

    def dropout_rate(self, head):
        """``alpha [..., d]`` in ``(0, alpha_max]``."""
        return self.alpha_max * ops.sigmoid(head)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        alpha = self.dropout_rate(head)
        self._add_regularizer(self.weight * ops.mean(-ops.log(alpha / self.alpha_max + 1e-3)))
        if not training:
            return z_e
        eps = keras.random.normal(ops.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        return z_e * ops.exp(alpha * eps)

    def get_config(self):
        return {**super().get_config(), "alpha_max": self.alpha_max, "weight": self.weight}
