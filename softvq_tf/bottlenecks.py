"""The six autoencoder bottlenecks compared by Wu & Flierl (AAAI 2020).

Every bottleneck is a Keras layer called as ``layer(z_e, head)``: ``z_e`` is the
encoder's code ``[B, d]`` (the latent every downstream probe uses) and ``head``
is the encoder's second linear head, whose meaning depends on the bottleneck
(``head_units`` says how wide it must be; ``None`` when unused). The layer
returns the decoder input ``[B, d]`` and adds its own regulariser with
``add_loss``. Quantizers also keep codebook-usage metrics, aggregated over the
whole epoch and, under ``tf.distribute``, over every replica.
"""

import threading

import keras
import numpy as np
import tensorflow as tf

from softvq_tf import BOTTLENECKS

PACKAGE = "softvq_tf"


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


def most_probable(probs, dtype=tf.float32):
    """One-hot ``[B, K]`` of each sample's most probable codeword (its nearest, for the hard quantizer)."""
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
    """

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(tf.reduce_sum(tf.cast(probs, self.dtype), axis=0))

    def result(self):
        p = self.counts / tf.maximum(tf.reduce_sum(self.counts), 1e-12)
        return tf.exp(-tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p), p)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class CodewordsInUse(_CodebookCounts):
    """How many codewords were the most probable one for at least one sample."""

    def update_state(self, probs, sample_weight=None):
        self.counts.assign_add(tf.reduce_sum(most_probable(probs, self.dtype), axis=0))

    def result(self):
        return tf.reduce_sum(tf.cast(self.counts > 0, self.dtype))


class Bottleneck(keras.layers.Layer):
    """Base class: maps ``(z_e [B, d], head [B, head_units] or None)`` to the decoder input.

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
    """Plain autoencoder: the decoder sees ``z_e`` itself; no regulariser."""

    def call(self, z_e, head=None, training=None):
        return tf.cast(z_e, tf.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianBottleneck(Bottleneck):
    """VAE / beta-VAE: ``z = mu + exp(logvar / 2) * eps`` with ``kl_weight * KL(q || N(0, I))``.

    ``z_e`` is the posterior mean ``mu``; the head is ``log sigma^2``. At
    inference the decoder gets the mean.
    """

    def __init__(self, kl_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
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
    """

    def __init__(self, alpha_max=0.7, weight=0.5, **kwargs):
        super().__init__(**kwargs)
        if not alpha_max > 0:
            raise ValueError(f"alpha_max must be > 0, got {alpha_max}")
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
        self._add_regularizer(
            self.weight * tf.reduce_mean(-tf.math.log(alpha / self.alpha_max + 1e-3))
        )
        if not training:
            return z_e
        eps = keras.random.normal(tf.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        return z_e * tf.exp(alpha * eps)

    def get_config(self):
        return {**super().get_config(), "alpha_max": self.alpha_max, "weight": self.weight}


class _Quantizer(Bottleneck):
    """Shared codebook ``[d, K]``, distances, the VQ loss, usage metrics and the collapse remedies.

    The remedies (all off by default, as in the paper) are the ones VQ users
    reach for when codewords die:

    - ``ema_decay``: the codebook follows exponential moving averages of its
      clusters instead of a gradient (van den Oord et al. 2017, appendix A.1,
      as Sonnet's ``VectorQuantizerEMA``: zero-debiased averages and Laplace
      smoothing ``ema_epsilon`` of the cluster sizes). The codebook term of the
      loss drops out; the commitment term stays.
    - ``kmeans_init``: the training loop sets the codebook to k-means centres of
      the first batches' codes once, before step 1 (``initialize_codebook``).
    - ``dead_code_steps``: a codeword that was nobody's nearest (most probable)
      for that many steps in a row is moved onto a random code of the current
      batch, one distinct code each; ``dead_code_restarts`` counts them.

    A training call only records its codes; ``update_codebook()`` applies the
    EMA and restart updates, and ``Autoencoder.train_step`` calls it after the
    optimizer step, outside the gradient tape (under MirroredStrategy, a
    variable assigned inside the tape loses its gradient on the first
    replica). The cluster statistics and usage are summed and the codes
    gathered over all replicas, so every replica computes the same codebook as
    one replica with the whole batch.
    """

    supports_ema = True

    def __init__(self, num_codewords, commitment=2.5, weight=3.0, codebook_initializer=None, ema_decay=None,
                 ema_epsilon=1e-5, kmeans_init=False, dead_code_steps=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_codewords) < 1:
            raise ValueError(f"num_codewords (K) must be >= 1, got {num_codewords}")
        if commitment < 0 or weight < 0:
            raise ValueError(f"commitment and weight must be >= 0, got {commitment}, {weight}")
        if ema_decay is not None and not (self.supports_ema and 0 < ema_decay < 1):
            raise ValueError(f"ema_decay must be in (0, 1) and is for the hard quantizer only, got {ema_decay}")
        if not ema_epsilon > 0:
            raise ValueError(f"ema_epsilon must be > 0, got {ema_epsilon}")
        if dead_code_steps is not None and int(dead_code_steps) < 1:
            raise ValueError(f"dead_code_steps must be >= 1, got {dead_code_steps}")
        self.num_codewords = int(num_codewords)
        self.commitment = float(commitment)
        self.weight = float(weight)
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
        # The last training call's codes, per thread: MirroredStrategy runs each replica in its own thread.
        self._pending = threading.local()
        if self.dead_code_steps:
            self.dead_code_restarts = keras.metrics.Sum(name="dead_code_restarts")
            if not hasattr(self, "seed_generator"):
                self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, z_e_shape):
        latent_dim = int(z_e_shape[-1])
        # State that every replica updates identically (from all-reduced
        # statistics) is written as the first replica's value.
        state = dict(trainable=False, aggregation="only_first_replica")
        self.codebook = self.add_weight(
            shape=(latent_dim, self.num_codewords),
            initializer=self.codebook_initializer,
            name="codebook",
            trainable=self.ema_decay is None,
            aggregation="only_first_replica",
        )
        if self.ema_decay is not None:
            # Sonnet's ExponentialMovingAverage: a zero-initialised hidden value and a step counter.
            self.ema_steps = self.add_weight(shape=(), initializer="zeros", name="ema_steps", **state)
            self.ema_cluster_size = self.add_weight(shape=(self.num_codewords,), initializer="zeros",
                                                    name="ema_cluster_size", **state)
            self.ema_dw = self.add_weight(shape=(latent_dim, self.num_codewords), initializer="zeros",
                                          name="ema_dw", **state)
        if self.dead_code_steps:
            self.idle_steps = self.add_weight(shape=(self.num_codewords,), initializer="zeros", name="idle_steps", **state)
        if self.kmeans_init:
            self.codebook_initialized = self.add_weight(shape=(), initializer="zeros", name="codebook_initialized",
                                                        **state)

    def distances(self, z):
        """Squared distances ``||z - e_k||^2``, ``[B, K]``, as ``|z|^2 - 2 z.e + |e|^2``."""
        z = tf.cast(z, tf.float32)
        codebook = tf.cast(self.codebook, tf.float32)
        z_sq = tf.reduce_sum(tf.square(z), axis=1, keepdims=True)  # [B, 1]
        e_sq = tf.reduce_sum(tf.square(codebook), axis=0, keepdims=True)  # [1, K]
        return z_sq - 2.0 * tf.matmul(z, codebook) + e_sq  # [B, K]

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

    def needs_codebook_init(self):
        """True while a ``kmeans_init`` codebook still waits for its k-means initialisation."""
        return self.kmeans_init and float(keras.ops.convert_to_numpy(self.codebook_initialized)) == 0.0

    def initialize_codebook(self, codes, seed=None):
        """Set the codebook to the k-means centres of ``codes [N, d]`` (N >= K), deterministic under ``seed``.

        scikit-learn's k-means++ and Lloyd iterations; with an EMA codebook the
        averages restart from the centres. Marks the layer initialised, so a
        resumed or reloaded model is never initialised again.
        """
        from sklearn.cluster import KMeans

        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] < self.num_codewords:
            raise ValueError(f"k-means initialisation needs at least K={self.num_codewords} codes [N, d], got {codes.shape}")
        kmeans = KMeans(self.num_codewords, n_init=1, random_state=self.seed if seed is None else seed).fit(codes)
        centres = kmeans.cluster_centers_.T.astype(np.float32)  # [d, K]
        self.codebook.assign(centres)
        if self.ema_decay is not None:
            for variable in (self.ema_steps, self.ema_cluster_size, self.ema_dw):
                variable.assign(tf.zeros_like(variable))
        if self.kmeans_init:
            self.codebook_initialized.assign(1.0)

    @staticmethod
    def _all_replicas(value, gather=False):
        """``value`` summed (or, with ``gather``, concatenated along axis 0) over the replicas."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return value
        if gather:
            return context.all_gather(value, axis=0)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)

    @property
    def maintains_codebook(self):
        """True when training steps update the codebook besides the optimizer (EMA or restarts)."""
        return self.ema_decay is not None or bool(self.dead_code_steps)

    def update_codebook(self):
        """Apply the EMA update and dead-codeword restarts for the codes of the last training call."""
        pending, self._pending.codes = getattr(self._pending, "codes", None), None
        if pending is not None:
            self._maintain_codebook(*pending)

    def _maintain_codebook(self, z_e, probs):
        """One training step's EMA update and dead-codeword restarts (both off by default)."""
        codebook = tf.cast(self.codebook, tf.float32)
        if self.ema_decay is not None:
            # Sonnet's VectorQuantizerEMA, with replica-summed statistics.
            decay = self.ema_decay
            steps = self.ema_steps + 1.0
            self.ema_steps.assign(steps)
            cluster_hidden = self.ema_cluster_size - (self.ema_cluster_size - self._all_replicas(tf.reduce_sum(probs, 0))) * (1 - decay)
            dw_hidden = self.ema_dw - (self.ema_dw - self._all_replicas(tf.matmul(z_e, probs, transpose_a=True))) * (1 - decay)
            self.ema_cluster_size.assign(cluster_hidden)
            self.ema_dw.assign(dw_hidden)
            debias = 1.0 - tf.pow(decay, steps)
            cluster_size = cluster_hidden / debias
            n = tf.reduce_sum(cluster_size)
            smoothed = (cluster_size + self.ema_epsilon) / (n + self.num_codewords * self.ema_epsilon) * n
            codebook = (dw_hidden / debias) / smoothed[None, :]
        if self.dead_code_steps:
            used = self._all_replicas(tf.reduce_sum(most_probable(probs), 0)) > 0
            idle = tf.where(used, 0.0, self.idle_steps + 1.0)
            codes = self._all_replicas(z_e, gather=True)  # the global batch, [B, d]
            batch = tf.shape(codes)[0]
            dead = idle >= float(self.dead_code_steps)
            # The first B dead codewords each get a distinct random code of the batch; the rest wait a step.
            rank = tf.cumsum(tf.cast(dead, tf.int32)) - 1
            restart = dead & (rank < batch)
            order = tf.argsort(keras.random.uniform([batch], seed=self.seed_generator))
            picked = tf.gather(codes, tf.gather(order, tf.clip_by_value(rank, 0, batch - 1)))  # [K, d]
            codebook = tf.where(restart[None, :], tf.transpose(picked), codebook)
            self.idle_steps.assign(tf.where(restart, 0.0, idle))
            count = tf.reduce_sum(tf.cast(restart, tf.float32))
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self.dead_code_restarts.update_state(count / replicas)  # the metric sums over replicas
            if self.ema_decay is not None:
                # A restarted codeword's averages restart as one sample at its new place.
                self.ema_cluster_size.assign(tf.where(restart, debias, cluster_hidden))
                self.ema_dw.assign(tf.where(restart[None, :], tf.transpose(picked) * debias, dw_hidden))
        self.codebook.assign(codebook)

    def call(self, z_e, head=None, training=None):
        z_e, head = self._float32(z_e, head)
        z_q, probs = self._quantize(z_e, head, training)
        # Eq. (27), reduced as in the notebooks (see _mean_squared_error): the
        # codebook term moves z_q towards sg(z_e); the commitment term moves
        # z_e towards sg(z_q). An EMA codebook needs no codebook term.
        commitment = self.commitment * _mean_squared_error(z_e, tf.stop_gradient(z_q))
        codebook_term = 0.0 if self.ema_decay is not None else _mean_squared_error(tf.stop_gradient(z_e), z_q)
        self._add_regularizer(self.weight * (codebook_term + commitment))
        self.perplexity.update_state(probs)
        self.codewords_in_use.update_state(probs)
        if training and self.maintains_codebook:
            self._pending.codes = (tf.stop_gradient(z_e), tf.stop_gradient(probs))
        # Straight-through estimator: forward value z_q, gradient copied to z_e.
        return z_e + tf.stop_gradient(z_q - z_e)

    def get_config(self):
        return {
            **super().get_config(),
            "num_codewords": self.num_codewords,
            "commitment": self.commitment,
            "weight": self.weight,
            "codebook_initializer": keras.initializers.serialize(self.codebook_initializer),
            "ema_decay": self.ema_decay,
            "ema_epsilon": self.ema_epsilon,
            "kmeans_init": self.kmeans_init,
            "dead_code_steps": self.dead_code_steps,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorQuantizer(_Quantizer):
    """Hard VQ-VAE bottleneck (van den Oord et al. 2017): nearest codeword ``e_k*``."""

    def _quantize(self, z_e, head, training):
        indices = self.nearest_codeword_indices(z_e)  # [B]
        z_q = tf.gather(tf.transpose(tf.cast(self.codebook, tf.float32)), indices)  # [B, d]
        return z_q, tf.one_hot(indices, self.num_codewords, dtype=z_q.dtype)


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
    """

    supports_ema = False

    def __init__(self, num_codewords, noise_std=0.0, likelihood="original", **kwargs):
        super().__init__(num_codewords, **kwargs)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if likelihood not in ("original", "gaussian"):
            raise ValueError(f"likelihood must be 'original' or 'gaussian', got {likelihood!r}")
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
            z_noisy = z_e + self.noise_std * keras.random.normal(tf.shape(z_e), dtype=z_e.dtype, seed=self.seed_generator)
        probs = self.posterior(z_noisy, head)  # [B, K]
        z_q = tf.matmul(probs, tf.cast(self.codebook, tf.float32), transpose_b=True)  # [B, d]
        return z_q, probs

    def get_config(self):
        return {**super().get_config(), "noise_std": self.noise_std, "likelihood": self.likelihood}


def make_bottleneck(name, *, num_codewords=None, kl_weight=None, commitment=None, vq_weight=None, noise_std=None,
                    likelihood=None, ema_decay=None, kmeans_init=None, dead_code_steps=None, seed=None):
    """Build the bottleneck layer called ``name`` (one of ``BOTTLENECKS``); unset settings keep the layer's default."""
    def given(**settings):
        return {k: v for k, v in settings.items() if v is not None}

    remedies = given(ema_decay=ema_decay, kmeans_init=kmeans_init, dead_code_steps=dead_code_steps)
    if name == "ae":
        return IdentityBottleneck(seed=seed, name="bottleneck")
    if name in ("vae", "beta_vae"):
        return GaussianBottleneck(**given(kl_weight=kl_weight), seed=seed, name="bottleneck")
    if name == "info_dropout":
        return InformationDropout(seed=seed, name="bottleneck")
    if name == "vq":
        return VectorQuantizer(num_codewords, **given(commitment=commitment, weight=vq_weight), **remedies, seed=seed,
                               name="bottleneck")
    if name == "soft_vq":
        return SoftVectorQuantizer(
            num_codewords, **given(commitment=commitment, weight=vq_weight, noise_std=noise_std, likelihood=likelihood),
            **remedies, seed=seed, name="bottleneck"
        )
    raise ValueError(f"unknown bottleneck {name!r}; choose one of {', '.join(BOTTLENECKS)}")
