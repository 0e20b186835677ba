"""The soft VQ-VAE quantizer: the Bayesian estimator of Wu & Flierl (AAAI 2020), with learned variances."""

import keras
from keras import ops

from softvq_tf.layers.metrics import PACKAGE
from softvq_tf.layers.quantizer import _Quantizer
from softvq_tf.layers.rules import check_layer_options


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftVectorQuantizer(_Quantizer):
    """Soft VQ-VAE bottleneck: the Bayesian estimator of Wu & Flierl (2020).

    With a Gaussian of mean ``e_k`` and per-sample std ``sigma_k = exp(s_k)``
    around each codeword (``s = head``, ``[..., K]``, one per position), the posterior-mean
    estimate of the (optionally noisy) code ``z'_e = z_e + n`` is

        z_q = sum_k p_k e_k,   p_k = softmax_k(-0.5 * exp(-2 s_k) * ||z'_e - e_k||^2 + c * s_k)

    (paper eqs. 21-24; ``c = +1`` mirrors the authors' notebooks, ``c = -d`` is
    the textbook Gaussian likelihood, ``likelihood="gaussian"``). The weights
    are computed in log space, so no finite input gives NaN or inf; as every
    ``sigma -> 0`` this becomes the hard quantizer. The loss is eq. (27) with
    the notebooks' per-element means. As in the notebooks, ``sg`` stops only
    the explicit ``z_e`` of each term: the codebook, the variance head and
    (through the distances inside ``p_k``) the encoder all receive gradient
    from the codebook term. That term is also the variance head's only
    gradient, so the EMA codebook (which drops it) is not offered here;
    k-means initialisation and dead-codeword restarts are.

    Args:
        num_codewords: K.
        noise_std: std of the Gaussian noise added to ``z_e`` before
            quantization, in training only (0: none, as in the notebooks).
        likelihood: ``"original"`` (``c = +1``) or ``"gaussian"`` (``c = -d``).
        **kwargs: the shared quantizer's ``commitment``, ``vq_weight``,
            ``codebook_initializer``, ``kmeans_init``, ``dead_code_steps``, ``seed``.

    Input ``z_e [..., d]`` and ``head = log sigma [..., K]``; output the posterior
    mean ``z_q [..., d]`` with the straight-through gradient.
    """

    supports_ema = False

    def __init__(self, num_codewords, noise_std=0.0, likelihood="original", **kwargs):
        super().__init__(num_codewords, **kwargs)
        check_layer_options(noise_std=noise_std, likelihood=likelihood)
        self.noise_std = float(noise_std)
        self.likelihood = likelihood
        if not hasattr(self, "seed_generator"):  # dead-codeword restarts may have made it
            self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return self.num_codewords

    def posterior(self, z, log_sigma, codebook=None):
        """Posterior codeword probabilities ``p [..., K]`` for codes ``z [..., d]`` and ``log_sigma [..., K]``."""
        distances = ops.maximum(self.distances(z, codebook), 0.0)  # [..., K]; the expansion can dip below 0
        log_sigma = ops.cast(log_sigma, "float32")
        # 0.5 * D / sigma^2 = 0.5 * exp(log D - 2 s); capping the exponent keeps
        # it finite for any finite input (exp(80) ~ 5.5e34 fits in float32).
        scaled = ops.exp(ops.minimum(ops.log(distances + 1e-30) - 2.0 * log_sigma, 80.0))
        norm = log_sigma if self.likelihood == "original" else -float(z.shape[-1]) * log_sigma
        return ops.softmax(-0.5 * scaled + norm, axis=-1)

    def _quantize(self, z_e, head, training, codebook):
        z_noisy = z_e
        if training and self.noise_std > 0:
            z_noisy = z_e + self.noise_std * keras.random.normal(
                ops.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator
            )
        probs = self.posterior(z_noisy, head, codebook)  # [N, K]
        z_q = ops.matmul(probs, ops.transpose(ops.cast(codebook, "float32")))  # [N, d]
        return z_q, probs

    def get_config(self):
        return {**super().get_config(), "noise_std": self.noise_std, "likelihood": self.likelihood}
