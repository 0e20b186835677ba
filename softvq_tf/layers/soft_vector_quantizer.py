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
        num_codewords: K, the codebook size (a whole number).
        noise_std: std of the Gaussian noise added to ``z_e`` before
            quantization, in training only (0: none, as in the notebooks).
        likelihood: ``"original"`` (``c = +1``, the notebooks') or ``"gaussian"`` (``c = -d``).
        commitment: beta of eq. (27), the weight of the commitment term (the paper's 2.5).
        vq_weight: w, the weight of the whole VQ loss (the paper's 3.0).
        codebook_initializer: initializer of the ``[d, K]`` codebook; None is uniform
            unit scaling, ``U[-sqrt(3/d), sqrt(3/d)]``.
        kmeans_init: start the codebook at the k-means centres of the first codes
            (``initialize_codebook(codes)`` before training; ``QuantizerModel`` does it).
        dead_code_steps: restart a codeword that was no code's most probable for this many
            training steps; None: never.
        decode: what the decoder reads: ``"posterior_mean"`` (the paper's), ``"most_probable"``
            (the most probable codeword, the gradient copied to ``z_e``: a decoder trained on hard
            tokens, as DALL-E's dVAE and LGQ decode) or ``"sample"`` (a codeword drawn from the
            posterior). The VQ loss stays on the posterior mean.
        hardening_steps: soft-to-hard annealing (Agustsson et al., NeurIPS 2017): the posterior's
            logits are divided by a temperature that falls linearly from 1 to 0 over this many
            training steps; at 0 the posterior is one-hot, the most probable codeword. None: the
            paper's fixed posterior.
        entropy_weight: weight of a peakedness penalty, the mean entropy of the posterior (in nats)
            over positions, added to the loss (the entropy terms of SoftVQ-VAE and LGQ); 0: none.
        usage_weight: weight of a codebook-usage reward, the entropy (in nats) of the batch's mean
            posterior, subtracted from the loss: with ``entropy_weight`` it is the entropy loss of
            LFQ (Yu et al., ICLR 2024) and LGQ's usage regulariser, which keeps a peaked posterior
            from collapsing onto a few codewords; 0: none.
        seed: seed of the codebook's initializer, the noise, the samples and the restarts.
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``.
        head: ``log sigma [..., K]``, a second linear head of the encoder (a ``Dense`` or
            ``Conv`` of width K on the same features as ``z_e``); required.
        training: whether this is a training call (noise and the codebook upkeep only then).

    Returns:
        The posterior mean ``z_q [..., d]`` with the straight-through gradient, float32.
        ``tokens(z_e, head)`` gives each position's most probable codeword and
        ``codewords(tokens)`` its value: a hard reading of the soft code, not the layer's output.

    Example:

    ```python
    import keras
    import numpy as np
    from softvq_tf import SoftVectorQuantizer

    features = keras.layers.Dense(32, activation="relu")
    to_code, to_log_sigma = keras.layers.Dense(8), keras.layers.Dense(64)  # d = 8, K = 64
    quantizer = SoftVectorQuantizer(64, seed=0, name="soft_vq")
    inputs = keras.Input((16,))
    h = features(inputs)
    z_q = quantizer(to_code(h), to_log_sigma(h))
    model = keras.Model(inputs, keras.layers.Dense(16)(z_q))
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    model.fit(x, x, epochs=2, batch_size=16, verbose=0)
    h = features(x)
    probs = quantizer.assignment_probabilities(to_code(h), to_log_sigma(h))  # [64, 64], rows sum to 1
    tokens = quantizer.tokens(to_code(h), to_log_sigma(h))  # [64]: the most probable codewords
    ```
    """

    supports_ema = False

    def __init__(
        self,
        num_codewords,
        noise_std=0.0,
        likelihood="original",
        commitment=2.5,
        vq_weight=3.0,
        codebook_initializer=None,
        kmeans_init=False,
        dead_code_steps=None,
        decode="posterior_mean",
        hardening_steps=None,
        entropy_weight=0.0,
        usage_weight=0.0,
        seed=None,
        **kwargs,
    ):
        # ema_decay is refused by the base (supports_ema); ema_epsilon is meaningless without it.
        super().__init__(
            num_codewords,
            commitment=commitment,
            vq_weight=vq_weight,
            codebook_initializer=codebook_initializer,
            ema_decay=kwargs.pop("ema_decay", None),
            ema_epsilon=kwargs.pop("ema_epsilon", 1e-5),
            kmeans_init=kmeans_init,
            dead_code_steps=dead_code_steps,
            seed=seed,
            **kwargs,
        )
        check_layer_options(
            noise_std=noise_std,
            likelihood=likelihood,
            decode=decode,
            hardening_steps=hardening_steps,
            entropy_weight=entropy_weight,
            usage_weight=usage_weight,
        )
        self.noise_std = float(noise_std)
        self.likelihood = likelihood
        self.decode = decode
        self.hardening_steps = None if hardening_steps is None else int(hardening_steps)
        self.entropy_weight = float(entropy_weight)
        self.usage_weight = float(usage_weight)
        # How soft the posterior is, per position: exp(entropy), and how far its mean lies from its hard token.
        self.effective_codewords = keras.metrics.Mean(name=self.metric_name("effective_codewords"))
        self.hard_token_distance = keras.metrics.Mean(name=self.metric_name("hard_token_distance"))
        if not hasattr(self, "seed_generator"):  # dead-codeword restarts may have made it
            self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return self.num_codewords

    def build(self, z_e_shape, head_shape=None):
        super().build(z_e_shape, head_shape)
        if self.hardening_steps:
            # Training steps taken, for the annealed temperature; one count per step on any number of replicas.
            self.hardening_step = self.add_weight(
                shape=(), initializer="zeros", trainable=False, name="hardening_step", aggregation="only_first_replica"
            )

    def temperature(self):
        """The posterior's temperature now: 1 (the paper's) or, with ``hardening_steps``, ``max(1 - step / steps,
        0)``."""
        if not self.hardening_steps:
            return 1.0
        return ops.maximum(1.0 - self.hardening_step / float(self.hardening_steps), 0.0)

    def posterior(self, z, log_sigma, codebook=None):
        """Posterior codeword probabilities ``p [..., K]`` for codes ``z [..., d]`` and ``log_sigma [..., K]``."""
        distances = ops.maximum(self.distances(z, codebook), 0.0)  # [..., K]; the expansion can dip below 0
        log_sigma = ops.cast(log_sigma, "float32")
        # 0.5 * D / sigma^2 = 0.5 * exp(log D - 2 s); capping the exponent keeps
        # it finite for any finite input (exp(80) ~ 5.5e34 fits in float32).
        scaled = ops.exp(ops.minimum(ops.log(distances + 1e-30) - 2.0 * log_sigma, 80.0))
        norm = log_sigma if self.likelihood == "original" else -float(z.shape[-1]) * log_sigma
        logits = -0.5 * scaled + norm
        if not self.hardening_steps:
            return ops.softmax(logits, axis=-1)
        temperature = self.temperature()
        hard = ops.one_hot(ops.argmax(logits, axis=-1), self.num_codewords, dtype=logits.dtype)
        return ops.where(temperature > 0.0, ops.softmax(logits / ops.maximum(temperature, 1e-6), axis=-1), hard)

    def _quantize(self, z_e, head, training, codebook):
        if training and self.hardening_steps:
            self.hardening_step.assign_add(1.0)
        z_noisy = z_e
        if training and self.noise_std > 0:
            z_noisy = z_e + self.noise_std * keras.random.normal(
                ops.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator
            )
        probs = self.posterior(z_noisy, head, codebook)  # [N, K]
        z_q = ops.matmul(probs, ops.transpose(ops.cast(codebook, "float32")))  # [N, d]
        return z_q, probs

    def _decoded(self, z_q, probs, training, codebook):
        """The measures of softness; the decoder's read of the posterior, and the peakedness and usage terms."""
        entropy = -ops.sum(probs * ops.log(probs + 1e-30), axis=-1)  # [N], nats
        most_probable = self.codewords(ops.argmax(probs, axis=-1), codebook)  # [N, d]
        self.update_metric(self.effective_codewords, ops.exp(entropy))
        self.update_metric(self.hard_token_distance, ops.sum(ops.square(z_q - most_probable), axis=-1))
        penalty = self.entropy_weight * ops.mean(entropy) if self.entropy_weight > 0 else None
        if self.usage_weight > 0:
            usage = ops.mean(probs, axis=0)  # [K]: the batch's mean posterior (per replica)
            reward = self.usage_weight * -ops.sum(usage * ops.log(usage + 1e-30))
            penalty = -reward if penalty is None else penalty - reward
        if self.decode == "most_probable":
            return most_probable, penalty
        if self.decode == "sample":
            drawn = keras.random.categorical(ops.log(probs + 1e-30), 1, seed=self.seed_generator)[:, 0]
            return self.codewords(drawn, codebook), penalty
        return z_q, penalty

    def get_config(self):
        return {
            **super().get_config(),
            "noise_std": self.noise_std,
            "likelihood": self.likelihood,
            "decode": self.decode,
            "hardening_steps": self.hardening_steps,
            "entropy_weight": self.entropy_weight,
            "usage_weight": self.usage_weight,
        }
