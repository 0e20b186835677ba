"""The six autoencoder bottlenecks compared by Wu & Flierl (AAAI 2020), and their shared base class.

Every bottleneck is a Keras layer called as ``layer(z_e, head)``: ``z_e`` is the
encoder's code ``[..., d]`` (one code ``[B, d]`` per image as in the paper, or
a sequence ``[B, T, d]`` or feature map ``[B, H, W, d]`` of codes) and ``head``
is the encoder's second linear head with the same leading axes, whose width
depends on the bottleneck (``head_units`` says how wide it must be; ``None``
when unused). The layer returns the decoder input, shaped as ``z_e``, and adds
its own regulariser with ``add_loss``. Every position is one code: the layers
compute on ``[N, d]`` rows, so a ``[B, H, W, d]`` call equals the ``[B*H*W, d]``
call, losses and gradients included. Quantizers also keep codebook-usage
metrics over every position, aggregated over the whole epoch and, under
``tf.distribute``, over every replica.

Written in ``keras.ops`` and ``keras.random`` only: they run on the
TensorFlow, JAX and PyTorch backends.
"""

import warnings

import keras
from keras import ops

from softvq_tf import compat
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
    return ops.mean(ops.square(a - b))


def squared_distances(z, codebook):
    """``||z - e_k||^2``, ``[..., K]``, for codes ``z [..., d]``, codebook ``[d, K]``: ``|z|^2 - 2 z.e + |e|^2``."""
    z = ops.cast(z, "float32")
    codebook = ops.cast(codebook, "float32")
    z_sq = ops.sum(ops.square(z), axis=-1, keepdims=True)  # [..., 1]
    e_sq = ops.sum(ops.square(codebook), axis=0, keepdims=True)  # [1, K]
    return z_sq - 2.0 * ops.matmul(z, codebook) + e_sq  # [..., K]


def nearest_codewords(z, codebook):
    """``argmin_k ||z - e_k||^2``, ``[...]``: the token of each code ``z [..., d]`` in a codebook ``[d, K]``."""
    return ops.argmin(squared_distances(z, codebook), axis=-1)


def codebook_rows(codebook, tokens):
    """The codewords ``[..., d]`` of ``tokens [...]`` in a codebook ``[d, K]``."""
    return ops.take(ops.transpose(ops.cast(codebook, "float32")), tokens, axis=0)


def as_rows(x):
    """``x [..., w]`` as rows ``[N, w]`` (``[B, w]`` is returned as it is)."""
    return x if len(x.shape) == 2 else ops.reshape(x, (-1, x.shape[-1]))


def leading_shape_of(rows, like, width=None):
    """Rows ``[N, w]`` back in the leading shape of ``like [..., d]``: ``[..., width or w]``."""
    if len(like.shape) == 2:
        return rows
    return ops.reshape(rows, (*ops.shape(like)[:-1], rows.shape[-1] if width is None else width))


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class _DeferredMetricUpdates:
    """Metric updates waiting for a scope that maps the metrics' variables (a plain object: Keras tracks no list)."""

    def __init__(self):
        self.pending = []


class Bottleneck(keras.layers.Layer):
    """Base class: maps ``(z_e [..., d], head [..., head_units] or None)`` to the decoder input.

    Args:
        seed: seed of the layer's initializers and noise (None: unseeded).
        **kwargs: Keras layer arguments (``name``, ...); ``dtype`` defaults to float32.

    Call arguments:
        z_e: the encoder's code ``[..., d]``: ``[B, d]``, ``[B, T, d]``, ``[B, H, W, d]``, ...
        head: the encoder's second head ``[..., head_units(d)]`` with ``z_e``'s
            leading axes, or None.
        training: whether this is a training call (noise and sampling only then).

    Output: the decoder input, shaped as ``z_e``, float32. The regulariser is
    added with ``add_loss`` and tracked by the ``bottleneck_loss`` metric.

    A head whose leading axes or width do not fit ``z_e`` is refused with a
    ``ValueError`` naming both shapes, when the layer builds and at each call.

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
        self._deferred = _DeferredMetricUpdates()

    def head_units(self, latent_dim):
        """Width of the encoder's second head this bottleneck needs (0: none)."""
        return 0

    def __call__(self, *args, **kwargs):
        self._deferred.pending = []  # deferred metric updates belong to the trace of the call that made them
        return super().__call__(*args, **kwargs)

    def build(self, z_e_shape, head_shape=None):
        self.check_shapes(z_e_shape, head_shape)

    def check_shapes(self, z_e_shape, head_shape=None, head_given=None):
        """Refuse codes of rank < 2 and a head that does not fit ``z_e``, naming both shapes."""
        z_e_shape = tuple(z_e_shape)
        name = type(self).__name__
        if len(z_e_shape) < 2:
            raise ValueError(f"{name} takes codes [..., d] of rank >= 2 (batch first), got z_e shape {z_e_shape}")
        units = self.head_units(z_e_shape[-1])
        if head_shape is None:
            if head_given is False and units:
                raise ValueError(
                    f"{name} needs a head [..., {units}] beside z_e shape {_shape_text(z_e_shape)}; "
                    "pass layer(z_e, head)"
                )
            return
        head_shape = tuple(head_shape)
        expected = (*z_e_shape[:-1], units)
        if not units:
            raise ValueError(
                f"{name} takes no head, got head shape {_shape_text(head_shape)} beside z_e shape "
                f"{_shape_text(z_e_shape)}; call it as layer(z_e)"
            )
        fits = len(head_shape) == len(expected) and all(
            a is None or b is None or a == b for a, b in zip(head_shape, expected)
        )
        if not fits:
            raise ValueError(
                f"{name}: head shape {_shape_text(head_shape)} does not fit z_e shape {_shape_text(z_e_shape)}; "
                f"the head must be {_shape_text(expected)} (z_e's leading axes, then {units})"
            )

    def _add_regularizer(self, loss):
        self.add_loss(loss)
        self.update_metric(self.regularizer_loss, loss)

    def update_metric(self, metric, *values):
        """``metric.update_state(*values)`` now, or, inside a JAX stateless call that cannot reach it, deferred.

        Keras's JAX trainer does not map the metrics of a layer into its
        forward pass (see ``compat.unmapped_in_stateless_scope``);
        ``update_deferred_metrics`` applies such updates from a scope that does.
        """
        if compat.unmapped_in_stateless_scope(metric.variables[0]):
            self._deferred.pending.append((metric, values))
        else:
            metric.update_state(*values)

    def update_deferred_metrics(self):
        """Apply the metric updates deferred by the last JAX stateless call (``Autoencoder.compute_loss`` does)."""
        pending, self._deferred.pending = self._deferred.pending, []
        for metric, values in pending:
            metric.update_state(*values)

    def _float32(self, z_e, head):
        """Inputs in float32 (the encoder may run in bfloat16), their shapes checked."""
        self.check_shapes(z_e.shape, None if head is None else head.shape, head_given=head is not None)
        return ops.cast(z_e, "float32"), None if head is None else ops.cast(head, "float32")

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

    Input ``z_e [..., d]``; output ``z_e`` in float32.
    """

    def call(self, z_e, head=None, training=None):
        return self._float32(z_e, head)[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianBottleneck(Bottleneck):
    """VAE / beta-VAE: ``z = mu + exp(logvar / 2) * eps`` with ``kl_weight * KL(q || N(0, I))``.

    ``z_e`` is the posterior mean ``mu``; the head is ``log sigma^2``. At
    inference the decoder gets the mean.

    Args:
        kl_weight: weight of the KL term (1 for the VAE, the paper's beta for beta-VAE).
        **kwargs: ``seed`` (of the sampling noise) and the Keras layer arguments.

    Input ``z_e [..., d]`` and ``head = log sigma^2 [..., d]``; output ``z [..., d]``.
    The KL term is summed over ``d`` and averaged over every position.
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
        **kwargs: ``seed`` (of the multiplicative noise) and the Keras layer arguments.

    Input ``z_e [..., d]`` and the rate logits ``head [..., d]``; output ``z [..., d]``.
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
        z_e: the encoder's code ``[..., d]``; each position is quantized on its own.
        head: the encoder's second head (the soft quantizer's log sigma ``[..., K]``).
        training: whether this is a training call.

    Output: the decoder input ``z_e + sg(z_q - z_e)``, shaped as ``z_e``:
    forward value ``z_q``, gradient copied to ``z_e`` (straight-through
    estimator). The losses are means over every position and dimension, the
    usage metrics and the codebook upkeep count every position.
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
        if "weight" in kwargs:  # the name vq_weight had in 0.1 (CHANGELOG.md)
            warnings.warn(
                f"{type(self).__name__}(weight=...) is deprecated and will be removed; use vq_weight=",
                DeprecationWarning,
                stacklevel=3,
            )
            vq_weight = kwargs.pop("weight")
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

    def build(self, z_e_shape, head_shape=None):
        super().build(z_e_shape, head_shape)
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
        """Squared distances ``||z - e_k||^2``, ``[..., K]``."""
        return squared_distances(z, self.codebook)

    def nearest_codeword_indices(self, z):
        """``argmin_k ||z - e_k||^2``, ``[...]``: the token of each position."""
        return nearest_codewords(z, self.codebook)

    def _quantize(self, z_e, head, training):
        """Return ``(z_q [N, d], assignment probabilities [N, K])`` for rows ``z_e [N, d]``, ``head [N, h]``."""
        raise NotImplementedError

    def assignment_probabilities(self, z_e, head=None):
        """How each code is assigned to the codewords, ``[..., K]`` (one-hot for the hard quantizer; no noise)."""
        z_e, head = self._float32(z_e, head)
        probs = self._quantize(as_rows(z_e), None if head is None else as_rows(head), training=False)[1]
        return leading_shape_of(probs, z_e, self.num_codewords)

    def tokens(self, z_e, head=None):
        """Each position's token ``[...]``: its nearest codeword (hard VQ), its most probable one (soft VQ)."""
        return ops.argmax(self.assignment_probabilities(z_e, head), axis=-1)

    def codewords(self, tokens):
        """The codewords of ``tokens [...]``, ``[..., d]``: the decoder input of a hard token grid."""
        return codebook_rows(self.codebook, tokens)

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
        """Set the codebook to the k-means centres of ``codes [..., d]``, every position one code (see
        ``CodebookUpkeep.initialize``)."""
        self.upkeep.initialize(codes, seed)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        shaped_like = z_e
        z_e, head = as_rows(z_e), None if head is None else as_rows(head)  # [N, d], [N, h]
        z_q, probs = self._quantize(z_e, head, training)
        # Eq. (27), reduced as in the notebooks (see _mean_squared_error): the
        # codebook term moves z_q towards sg(z_e); the commitment term moves
        # z_e towards sg(z_q). An EMA codebook needs no codebook term.
        commitment = self.commitment * _mean_squared_error(z_e, ops.stop_gradient(z_q))
        codebook_term = 0.0 if self.ema_decay is not None else _mean_squared_error(ops.stop_gradient(z_e), z_q)
        self._add_regularizer(self.vq_weight * (codebook_term + commitment))
        self.update_metric(self.perplexity, probs)
        self.update_metric(self.codewords_in_use, probs)
        if training and self.maintains_codebook:
            self.upkeep.record(z_e, probs)
        return leading_shape_of(self._decoder_input(z_e, z_q), shaped_like)

    def _decoder_input(self, z_e, z_q):
        """Straight-through estimator: forward value ``z_q``, the decoder's gradient copied to ``z_e``."""
        return z_e + ops.stop_gradient(z_q - z_e)

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

    Input ``z_e [..., d]`` (no head); output the nearest codeword of each position, ``[..., d]``.
    """

    def __init__(self, num_codewords, gradient_estimator="straight_through", **kwargs):
        super().__init__(num_codewords, **kwargs)
        check_layer_options(gradient_estimator=gradient_estimator)
        self.gradient_estimator = gradient_estimator

    def _quantize(self, z_e, head, training):
        indices = self.nearest_codeword_indices(z_e)  # [N]
        z_q = self.codewords(indices)  # [N, d]
        return z_q, ops.one_hot(indices, self.num_codewords, dtype=z_q.dtype)

    def _decoder_input(self, z_e, z_q):
        if self.gradient_estimator == "straight_through":
            return super()._decoder_input(z_e, z_q)
        return rotate_to(z_e, z_q)

    def get_config(self):
        return {**super().get_config(), "gradient_estimator": self.gradient_estimator}


def rotate_to(e, q, eps=1e-12):
    """The rotation trick's decoder input: ``sg(lambda R) e``, equal to ``q`` in value (along the last axis).

    ``u = e / ||e||``, ``v = q / ||q||``, ``w = (u + v) / ||u + v||``; then
    ``R e = e - 2 (e.w) w + 2 (e.u) v`` (Fifty et al. 2024, eq. 4, in the
    efficient form), with ``u``, ``v``, ``w`` and ``lambda = ||q|| / ||e||``
    held constant, so the gradient to ``e`` is ``lambda R^T g``.
    """
    dot = lambda a, b: ops.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
    e_norm = ops.sqrt(dot(e, e))
    q_norm = ops.sqrt(dot(q, q))
    u = ops.stop_gradient(e / ops.maximum(e_norm, eps))
    v = ops.stop_gradient(q / ops.maximum(q_norm, eps))
    # tf.math.l2_normalize's form: x / sqrt(max(|x|^2, eps)).
    w = ops.stop_gradient((u + v) * ops.rsqrt(ops.maximum(dot(u + v, u + v), eps)))
    rotated = e - 2.0 * dot(e, w) * w + 2.0 * dot(e, u) * v
    return rotated * ops.stop_gradient(q_norm / ops.maximum(e_norm, eps))


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

    def posterior(self, z, log_sigma):
        """Posterior codeword probabilities ``p [..., K]`` for codes ``z [..., d]`` and ``log_sigma [..., K]``."""
        distances = ops.maximum(self.distances(z), 0.0)  # [..., K]; the expansion can dip below 0
        log_sigma = ops.cast(log_sigma, "float32")
        # 0.5 * D / sigma^2 = 0.5 * exp(log D - 2 s); capping the exponent keeps
        # it finite for any finite input (exp(80) ~ 5.5e34 fits in float32).
        scaled = ops.exp(ops.minimum(ops.log(distances + 1e-30) - 2.0 * log_sigma, 80.0))
        norm = log_sigma if self.likelihood == "original" else -float(z.shape[-1]) * log_sigma
        return ops.softmax(-0.5 * scaled + norm, axis=-1)

    def _quantize(self, z_e, head, training):
        z_noisy = z_e
        if training and self.noise_std > 0:
            z_noisy = z_e + self.noise_std * keras.random.normal(
                ops.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator
            )
        probs = self.posterior(z_noisy, head)  # [N, K]
        z_q = ops.matmul(probs, ops.transpose(ops.cast(self.codebook, "float32")))  # [N, d]
        return z_q, probs

    def get_config(self):
        return {**super().get_config(), "noise_std": self.noise_std, "likelihood": self.likelihood}
