"""The codebook quantizers' shared base: a ``[d, K]`` codebook, the VQ loss of eq. (27), usage metrics and upkeep.

``VectorQuantizer`` (``vector_quantizer.py``) and ``SoftVectorQuantizer``
(``soft_vector_quantizer.py``) differ only in how a code is assigned to the
codewords (``_quantize``) and how the decoder's gradient reaches ``z_e``.
"""

import warnings

import keras
from keras import ops

from softvq_tf.layers.base import Bottleneck
from softvq_tf.layers.codebook import CodebookUpkeep
from softvq_tf.layers.distances import (
    as_rows,
    codebook_rows,
    leading_shape_of,
    mean_squared_error,
    nearest_codewords,
    squared_distances,
)
from softvq_tf.layers.metrics import CodebookPerplexity, CodewordsInUse
from softvq_tf.layers.rules import check_layer_options


class _Quantizer(Bottleneck):
    """Shared codebook ``[d, K]``, distances, the VQ loss (eq. 27), usage metrics and the codebook upkeep.

    Private: the public quantizers (``VectorQuantizer``, ``SoftVectorQuantizer``) spell out their
    arguments and defaults. The losses are means over every position and dimension; the usage
    metrics and the codebook upkeep count every position.
    """

    supports_ema = True

    def __init__(
        self,
        num_codewords,
        *,
        commitment,
        vq_weight,
        codebook_initializer,
        ema_decay,
        ema_epsilon,
        kmeans_init,
        dead_code_steps,
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
        self.perplexity = CodebookPerplexity(self.num_codewords, name=self.metric_name("perplexity"))
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name=self.metric_name("codewords_in_use"))
        self.upkeep = CodebookUpkeep(
            self, self.num_codewords, self.ema_decay, self.ema_epsilon, self.kmeans_init, self.dead_code_steps
        )
        if self.dead_code_steps:
            self.dead_code_restarts = keras.metrics.Sum(name=self.metric_name("dead_code_restarts"))
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

    def distances(self, z, codebook=None):
        """Squared distances ``||z - e_k||^2``, ``[..., K]`` (to ``codebook`` if given, else the layer's)."""
        return squared_distances(z, self.codebook if codebook is None else codebook)

    def nearest_codeword_indices(self, z, codebook=None):
        """``argmin_k ||z - e_k||^2``, ``[...]``: the token of each position."""
        return nearest_codewords(z, self.codebook if codebook is None else codebook)

    def _quantize(self, z_e, head, training, codebook):
        """Return ``(z_q [N, d], assignment probabilities [N, K])`` for rows ``z_e [N, d]``, ``head [N, h]``,
        read against ``codebook [d, K]``."""
        raise NotImplementedError

    def assignment_probabilities(self, z_e, head=None):
        """How each code is assigned to the codewords, ``[..., K]`` (one-hot for the hard quantizer; no noise)."""
        z_e, head = self._float32(z_e, head)
        probs = self._quantize(as_rows(z_e), None if head is None else as_rows(head), False, self.codebook)[1]
        return leading_shape_of(probs, z_e, self.num_codewords)

    def tokens(self, z_e, head=None):
        """Each position's token ``[...]``: its nearest codeword (hard VQ), its most probable one (soft VQ)."""
        return ops.argmax(self.assignment_probabilities(z_e, head), axis=-1)

    def codewords(self, tokens, codebook=None):
        """The codewords of ``tokens [...]``, ``[..., d]``: the decoder input of a hard token grid."""
        return codebook_rows(self.codebook if codebook is None else codebook, tokens)

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
        if training and self.kmeans_init:
            self.upkeep.check_initialized()
        upkeep_in_call = bool(training) and self.maintains_codebook and not self.upkeep.by_step
        codebook = self.codebook
        if upkeep_in_call and keras.backend.backend() == "torch":
            # This call assigns the codebook in place before backward runs: the forward reads a copy, which
            # autograd keeps (and through which a trainable codebook still gets its gradient).
            codebook = ops.copy(self.codebook.value)
        z_q, probs = self._quantize(z_e, head, training, codebook)
        decoded, extra_loss = self._decoded(z_q, probs, training, codebook)
        # Eq. (27), reduced as in the notebooks (see mean_squared_error): the
        # codebook term moves z_q towards sg(z_e); the commitment term moves
        # z_e towards sg(z_q). An EMA codebook needs no codebook term.
        commitment = self.commitment * mean_squared_error(z_e, ops.stop_gradient(z_q))
        codebook_term = 0.0 if self.ema_decay is not None else mean_squared_error(ops.stop_gradient(z_e), z_q)
        vq_loss = self.vq_weight * (codebook_term + commitment)
        self._add_regularizer(vq_loss if extra_loss is None else vq_loss + extra_loss)
        self.update_metric(self.perplexity, probs)
        self.update_metric(self.codewords_in_use, probs)
        if training and self.maintains_codebook:
            self.upkeep.record(z_e, probs)
            if upkeep_in_call:
                self.upkeep.apply_in_call()
        return leading_shape_of(self._decoder_input(z_e, decoded), shaped_like)

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.kmeans_init:  # a reloaded or resumed model whose codebook had its k-means start
            self.upkeep.initialized = float(ops.convert_to_numpy(self.codebook_initialized)) == 1.0

    def _decoded(self, z_q, probs, training, codebook):
        """``(what the decoder reads [N, d], a loss term beside the VQ loss or None)``: ``(z_q, None)`` here (the
        soft quantizer may read a hard codeword, and penalise its posterior's entropy)."""
        return z_q, None

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
