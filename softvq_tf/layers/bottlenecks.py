"""The six autoencoder bottlenecks compared by Wu & Flierl (AAAI 2020), and their shared base class.

Every bottleneck is a Keras layer called as ``layer(z_e, head)``: ``z_e`` is the
encoder's code ``[B, d]`` (the latent every downstream probe uses) and ``head``
is the encoder's second linear head, whose meaning depends on the bottleneck
(``head_units`` says how wide it must be; ``None`` when unused). The layer
returns the decoder input ``[B, d]`` and adds its own regulariser with
``add_loss``. Quantizers also keep codebook-usage metrics, aggregated over the
whole epoch and, under ``tf.distribute``, over every replica.
"""

import keras
import tensorflow as tf

from softvq_tf.layers.codebook import CodebookUpkeep
from softvq_tf.layers.metrics import PACKAGE, CodebookPerplexity, CodewordsInUse
from softvq_tf.options import check_layer_options


def _mean_squared_error(a, b):
    """``mean((a - b)^2)`` over the batch AND the d latent dimensions.

    This is how the authors' notebooks (and Sonnet, and keras.io's VQ-VAE) write
    each term of eq. (27): ``(1/d) mean_b ||a_b - b_b||^2``. The paper's weights
    ``w`` and ``beta`` were tuned against it and against a per-pixel mean
    reconstruction term; summing over d would make the VQ loss d times stronger
    (64x on MNIST), shrink the code into the middle of the codebook and cost
    about 14 clustering-accuracy points.
    """
    return tf.reduce_mean(tf.square(a - b))


def squared_distances(z, codebook):
    """``||z_b - e_k||^2``, ``[B, K]``, for codes ``z [B, d]`` and a codebook ``[d, K]``: ``|z|^2 - 2 z.e + |e|^2``."""
    z = tf.cast(z, tf.float32)
    codebook = tf.cast(codebook, tf.float32)
    z_sq = tf.reduce_sum(tf.square(z), axis=1, keepdims=True)  # [B, 1]
    e_sq = tf.reduce_sum(tf.square(codebook), axis=0, keepdims=True)  # [1, K]
    return z_sq - 2.0 * tf.matmul(z, codebook) + e_sq  # [B, K]


class Bottleneck(keras.layers.Layer):
    """Base class: maps ``(z_e [B, d], head [B, head_units] or None)`` to the decoder input.

    Args:
        seed: seed of the layer's initializers and noise (None: unseeded).
        **kwargs: Keras layer arguments (``name``, ...); ``dtype`` defaults to float32.

    Call arguments:
        z_e: the encoder's code ``[B, d]``.
        head: the encoder's second head ``[B, head_units(d)]``, or None.
        training: whether this is a training call (noise and sampling only then).

    Output: the decoder input, ``[B, d]``, float32. The regulariser is added
    with ``add_loss`` and tracked by the ``bottleneck_loss`` metric.

    Bottlenecks compute in float32 even under a mixed-precision policy: their
    distances (``|z|^2 - 2 z.e + |e|^2`` cancels badly in bfloat16), posteriors,
    KL terms and losses need the precision. Inside ``call`` Keras reports a
    float32 variable's dtype as the layer's compute dtype, so only a float32
    policy on the layer itself makes that hold.
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.regularizer_loss = keras.metrics.Mean(name="bottleneck_loss")

    def head_units(self, latent_dim):
        """Width of the encoder's second head this bottleneck needs (0: none)."""
        return 0

    def _add_regularizer(self, loss):
        self.add_loss(loss)
        self.regularizer_loss.update_state(loss)

    @staticmethod
    def _float32(z_e, head):
        """Inputs in float32 (the encoder may run in bfloat16)."""
        return tf.cast(z_e, tf.float32), None if head is None else tf.cast(head, tf.float32)

    def compute_output_shape(self, z_e_shape):
        return z_e_shape

    # Keras saves a layer's weights but not its SeedGenerator's state; without
    # it a run resumed from a backup would draw other noise than an
    # uninterrupted one. The state travels with the weights under its own key.
    _SEED_STATE = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if hasattr(self, "seed_generator"):
            store[self._SEED_STATE] = keras.ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_STATE in keys and hasattr(self, "seed_generator"):
            self.seed_generator.state.assign(store[self._SEED_STATE])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_STATE})

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class IdentityBottleneck(Bottleneck):
    """Plain autoencoder: the decoder sees ``z_e`` itself; no regulariser.

    Args:
        seed: unused (kept for a uniform constructor).

    Input ``z_e [B, d]``; output ``z_e [B, d]`` in float32.
    """

    def call(self, z_e, head=None, training=None):
        return tf.cast(z_e, tf.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianBottleneck(Bottleneck):
    """VAE / beta-VAE: ``z = mu + exp(logvar / 2) * eps`` with ``kl_weight * KL(q || N(0, I))``.

    ``z_e`` is the posterior mean ``mu``; the head is ``log sigma^2``. At
    inference the decoder gets the mean.

    Args:
        kl_weight: weight of the KL term (1 for the VAE, the paper's beta for beta-VAE).
        seed: seed of the sampling noise.

    Input ``z_e [B, d]`` and ``head = log sigma^2 [B, d]``; output ``z [B, d]``.
    """

    def __init__(self, kl_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        check_layer_options(kl_weight=kl_weight)
        self.kl_weight = float(kl_weight)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return latent_dim

    @staticmethod
    def kl_divergence(mu, logvar):
        """Closed-form ``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, ``[B]``."""
        return -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        self._add_regularizer(self.kl_weight * tf.reduce_mean(self.kl_divergence(z_e, head)))
        if not training:
            return z_e
        eps = keras.random.normal(tf.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        return z_e + tf.exp(0.5 * head) * eps

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

    Input ``z_e [B, d]`` and the rate logits ``head [B, d]``; output ``z [B, d]``.
    """

    def __init__(self, alpha_max=0.7, weight=0.5, **kwargs):
        super().__init__(**kwargs)
        check_layer_options(alpha_max=alpha_max)
        self.alpha_max = float(alpha_max)
        self.weight = float(weight)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def head_units(self, latent_dim):
        return latent_dim

    def dropout_rate(self, head):
        """``alpha [B, d]`` in ``(0, alpha_max]``."""
        return self.alpha_max * tf.sigmoid(head)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        alpha = self.dropout_rate(head)
        self._add_regularizer(self.weight * tf.reduce_mean(-tf.math.log(alpha / self.alpha_max + 1e-3)))
        if not training:
            return z_e
        eps = keras.random.normal(tf.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        return z_e * tf.exp(alpha * eps)

    def get_config(self):
        return {**super().get_config(), "alpha_max": self.alpha_max, "weight": self.weight}


class _Quantizer(Bottleneck):
    """Shared codebook ``[d, K]``, distances, the VQ loss (eq. 27), usage metrics and the codebook upkeep.

    Args:
        num_codewords: K, the codebook size.
        commitment: beta of eq. (27), the weight of the commitment term.
        vq_weight: w, the weight of the whole VQ loss.
        codebook_initializer: initializer of the ``[d, K]`` codebook; default
            uniform unit scaling, ``U[-sqrt(3/d), sqrt(3/d)]``.
        ema_decay, ema_epsilon, kmeans_init, dead_code_steps: the codebook
            remedies, all off by default (see ``softvq_tf.layers.codebook``).
            With ``ema_decay`` the codebook term of the loss drops out; the
            commitment term stays.
        seed: seed of the initializer and of any randomness.

    Call arguments:
        z_e: the encoder's code ``[B, d]``.
        head: the encoder's second head (the soft quantizer's log sigma ``[B, K]``).
        training: whether this is a training call.

    Output: the decoder input ``z_e + sg(z_q - z_e)``, ``[B, d]``: forward value
    ``z_q``, gradient copied to ``z_e`` (straight-through estimator).
    """

    supports_ema = True

    def __init__(
        self,
        num_codewords,
        commitment=2.5,
        vq_weight=3.0,
        codebook_initializer=None,
        ema_decay=None,
        ema_epsilon=1e-5,
        kmeans_init=False,
        dead_code_steps=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_layer_options(
            num_codewords=num_codewords,
            commitment=commitment,
            vq_weight=vq_weight,
            ema_decay=ema_decay,
            ema_epsilon=ema_epsilon,
            dead_code_steps=dead_code_steps,
        )
        if ema_decay is not None and not self.supports_ema:
            raise ValueError(f"ema_decay is for the hard quantizer only, got {ema_decay} for {type(self).__name__}")
        self.num_codewords = int(num_codewords)
        self.commitment = float(commitment)
        self.vq_weight = float(vq_weight)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.ema_epsilon = float(ema_epsilon)
        self.kmeans_init = bool(kmeans_init)
        self.dead_code_steps = None if dead_code_steps is None else int(dead_code_steps)
        # Uniform unit scaling: U[-sqrt(3/d), sqrt(3/d)] on the [d, K] codebook.
        self.codebook_initializer = keras.initializers.get(
            codebook_initializer
            or keras.initializers.VarianceScaling(1.0, mode="fan_in", distribution="uniform", seed=self.seed)
        )
        self.perplexity = CodebookPerplexity(self.num_codewords, name="perplexity")
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name="codewords_in_use")
        self.upkeep = CodebookUpkeep(
            self, self.num_codewords, self.ema_decay, self.ema_epsilon, self.kmeans_init, self.dead_code_steps
        )
        if self.dead_code_steps:
            self.dead_code_restarts = keras.metrics.Sum(name="dead_code_restarts")
            if not hasattr(self, "seed_generator"):
                self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, z_e_shape):
        latent_dim = int(z_e_shape[-1])
        self.codebook = self.add_weight(
            shape=(latent_dim, self.num_codewords),
            initializer=self.codebook_initializer,
            name="codebook",
            trainable=self.ema_decay is None,
            aggregation="only_first_replica",
        )
        self.upkeep.build(latent_dim)

    def distances(self, z):
        """Squared distances ``||z - e_k||^2``, ``[B, K]``."""
        return squared_distances(z, self.codebook)

    def nearest_codeword_indices(self, z):
        """``argmin_k ||z - e_k||^2``, ``[B]``."""
        return tf.argmin(self.distances(z), axis=-1)

    def _quantize(self, z_e, head, training):
        """Return ``(z_q [B, d], assignment probabilities [B, K])``."""
        raise NotImplementedError

    def assignment_probabilities(self, z_e, head=None):
        """How each code is assigned to the codewords, ``[B, K]`` (one-hot for the hard quantizer; no noise)."""
        z_e, head = self._float32(z_e, head)
        return self._quantize(z_e, head, training=False)[1]

    # The codebook upkeep's side of the training loop (see CodebookUpkeep).
    @property
    def maintains_codebook(self):
        """True when training steps update the codebook besides the optimizer (EMA or restarts)."""
        return self.upkeep.active

    def update_codebook(self):
        """Apply the EMA update and dead-codeword restarts for the codes of the last training call."""
        self.upkeep.apply()

    def needs_codebook_init(self):
        """True while a ``kmeans_init`` codebook still waits for its k-means initialisation."""
        return self.upkeep.needs_initialization()

    def initialize_codebook(self, codes, seed=None):
        """Set the codebook to the k-means centres of ``codes [N, d]`` (see ``CodebookUpkeep.initialize``)."""
        self.upkeep.initialize(codes, seed)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        z_q, probs = self._quantize(z_e, head, training)
        # Eq. (27), reduced as in the notebooks (see _mean_squared_error): the
        # codebook term moves z_q towards sg(z_e); the commitment term moves
        # z_e towards sg(z_q). An EMA codebook needs no codebook term.
        commitment = self.commitment * _mean_squared_error(z_e, tf.stop_gradient(z_q))
        codebook_term = 0.0 if self.ema_decay is not None else _mean_squared_error(tf.stop_gradient(z_e), z_q)
        self._add_regularizer(self.vq_weight * (codebook_term + commitment))
        self.perplexity.update_state(probs)
        self.codewords_in_use.update_state(probs)
        if training and self.maintains_codebook:
            self.upkeep.record(z_e, probs)
        return self._decoder_input(z_e, z_q)

    def _decoder_input(self, z_e, z_q):
        """Straight-through estimator: forward value ``z_q``, the decoder's gradient copied to ``z_e``."""
        return z_e + tf.stop_gradient(z_q - z_e)

    def get_config(self):
        return {
            **super().get_config(),
            "num_codewords": self.num_codewords,
            "commitment": self.commitment,
            "vq_weight": self.vq_weight,
            "codebook_initializer": keras.initializers.serialize(self.codebook_initializer),
            "ema_decay": self.ema_decay,
            "ema_epsilon": self.ema_epsilon,
            "kmeans_init": self.kmeans_init,
            "dead_code_steps": self.dead_code_steps,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorQuantizer(_Quantizer):
    """Hard VQ-VAE bottleneck (van den Oord et al. 2017): nearest codeword ``e_k*``, ``k* = argmin_k ||z_e - e_k||^2``.

    Args:
        gradient_estimator: how the decoder's gradient reaches ``z_e``:
            ``"straight_through"`` copies it (the paper's); ``"rotation"`` is the
            rotation trick (Fifty et al. 2024): the decoder input is
            ``sg(lambda R) z_e`` with ``R`` the rotation that takes ``z_e``'s
            direction to ``z_q``'s (Householder form) and ``lambda =
            ||z_q|| / ||z_e||``, so its value is ``z_q`` and the gradient to
            ``z_e`` is ``lambda R^T g``.
        **kwargs: those of the shared quantizer (``num_codewords``,
            ``commitment``, ``vq_weight``, ``codebook_initializer``, the remedies
            ``ema_decay``, ``ema_epsilon``, ``kmeans_init``, ``dead_code_steps``, ``seed``).

    Input ``z_e [B, d]`` (no head); output the nearest codeword ``[B, d]``.
    """

    def __init__(self, num_codewords, gradient_estimator="straight_through", **kwargs):
        super().__init__(num_codewords, **kwargs)
        check_layer_options(gradient_estimator=gradient_estimator)
        self.gradient_estimator = gradient_estimator

    def _quantize(self, z_e, head, training):
        indices = self.nearest_codeword_indices(z_e)  # [B]
        z_q = tf.gather(tf.transpose(tf.cast(self.codebook, tf.float32)), indices)  # [B, d]
        return z_q, tf.one_hot(indices, self.num_codewords, dtype=z_q.dtype)

    def _decoder_input(self, z_e, z_q):
        if self.gradient_estimator == "straight_through":
            return super()._decoder_input(z_e, z_q)
        return rotate_to(z_e, z_q)

    def get_config(self):
        return {**super().get_config(), "gradient_estimator": self.gradient_estimator}


def rotate_to(e, q, eps=1e-12):
    """The rotation trick's decoder input: ``sg(lambda R) e``, equal to ``q`` in value (rows of ``[B, d]``).

    ``u = e / ||e||``, ``v = q / ||q||``, ``w = (u + v) / ||u + v||``; then
    ``R e = e - 2 (e.w) w + 2 (e.u) v`` (Fifty et al. 2024, eq. 4, in the
    efficient form), with ``u``, ``v``, ``w`` and ``lambda = ||q|| / ||e||``
    held constant, so the gradient to ``e`` is ``lambda R^T g``.
    """
    e_norm = tf.norm(e, axis=-1, keepdims=True)
    q_norm = tf.norm(q, axis=-1, keepdims=True)
    u = tf.stop_gradient(e / tf.maximum(e_norm, eps))
    v = tf.stop_gradient(q / tf.maximum(q_norm, eps))
    w = tf.stop_gradient(tf.math.l2_normalize(u + v, axis=-1, epsilon=eps))
    dot = lambda a, b: tf.reduce_sum(a * b, axis=-1, keepdims=True)  # noqa: E731
    rotated = e - 2.0 * dot(e, w) * w + 2.0 * dot(e, u) * v
    return rotated * tf.stop_gradient(q_norm / tf.maximum(e_norm, eps))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftVectorQuantizer(_Quantizer):
    """Soft VQ-VAE bottleneck: the Bayesian estimator of Wu & Flierl (2020).

    With a Gaussian of mean ``e_k`` and per-sample std ``sigma_k = exp(s_k)``
    around each codeword (``s = head``, ``[B, K]``), the posterior-mean
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

    Input ``z_e [B, d]`` and ``head = log sigma [B, K]``; output the posterior
    mean ``z_q [B, d]`` with the straight-through gradient.
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

    def posterior(self, z, log_sigma):
        """Posterior codeword probabilities ``p [B, K]`` for codes ``z [B, d]``."""
        distances = tf.maximum(self.distances(z), 0.0)  # [B, K]; the expansion can dip below 0
        log_sigma = tf.cast(log_sigma, tf.float32)
        # 0.5 * D / sigma^2 = 0.5 * exp(log D - 2 s); capping the exponent keeps
        # it finite for any finite input (exp(80) ~ 5.5e34 fits in float32).
        scaled = tf.exp(tf.minimum(tf.math.log(distances + 1e-30) - 2.0 * log_sigma, 80.0))
        norm = log_sigma if self.likelihood == "original" else -float(z.shape[-1]) * log_sigma
        return tf.nn.softmax(-0.5 * scaled + norm, axis=-1)

    def _quantize(self, z_e, head, training):
        z_noisy = z_e
        if training and self.noise_std > 0:
            z_noisy = z_e + self.noise_std * keras.random.normal(
                tf.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator
            )
        probs = self.posterior(z_noisy, head)  # [B, K]
        z_q = tf.matmul(probs, tf.cast(self.codebook, tf.float32), transpose_b=True)  # [B, d]
        return z_q, probs

    def get_config(self):
        return {**super().get_config(), "noise_std": self.noise_std, "likelihood": self.likelihood}
