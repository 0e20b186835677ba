"""Codebook upkeep: what moves a quantizer's codebook besides the optimizer.

The codebook-collapse remedies VQ users reach for when codewords die (all off
by default, as in the paper):

- EMA codebook (``ema_decay``): the codebook follows exponential moving
  averages of its clusters instead of a gradient (van den Oord et al. 2017,
  appendix A.1, as Sonnet's ``VectorQuantizerEMA``: zero-debiased averages,
  Laplace smoothing ``ema_epsilon`` of the cluster sizes).
- k-means initialisation (``kmeans_init``): the training loop sets the
  codebook to k-means centres of the first batches' codes once, before step 1.
- Dead-codeword restarts (``dead_code_steps``): a codeword that was nobody's
  nearest (most probable) for that many steps in a row is moved onto a random
  code of the current batch, one distinct code each.

Every position counts: a quantizer passes its codes flattened to ``[N, d]``.
Under ``tf.distribute`` the statistics are summed and the codes gathered over
all replicas, so every replica computes the codebook that one replica would
compute from the whole batch.
"""

import threading

import keras
import numpy as np
from keras import ops

from softvq_tf import compat
from softvq_tf.layers.metrics import most_probable_one_hot
from softvq_tf.layers.replicas import all_replicas, replicas_in_sync


class CodebookUpkeep:
    """The EMA update, k-means initialisation and dead-codeword restarts of one quantizer's codebook.

    The quantizer layer owns the variables (``build`` creates them with its
    ``add_weight``, so they save, reload and distribute with the layer). Where
    the upkeep runs:

    1. a training call of the layer passes its codes to ``record``;
    2. in any Keras model, the same call then applies the upkeep (``apply_in_call``),
       as Sonnet's EMA quantizer and Keras's ``BatchNormalization`` update their
       state: on TensorFlow and PyTorch in place, on JAX into the non-trainable
       state that ``stateless_call`` returns;
    3. inside ``QuantizerModel``'s (and ``Autoencoder``'s) training step, which sets
       ``by_step`` while it runs, the call only records, and the step calls the
       layer's ``update_codebook`` (``apply``) after the optimizer step, outside
       the gradient tape: under MirroredStrategy a variable assigned inside the
       tape loses its gradient on the first replica, and it is the order the
       committed runs were trained in. ``record`` keeps the codes per thread,
       because MirroredStrategy runs each replica's step in its own thread.
    4. before step 1, ``initialize`` sets a ``kmeans_init`` codebook from codes of
       the untrained encoder; a training call before it is refused.

    Args:
        layer: the quantizer layer (its ``codebook`` weight, metrics and seed generator).
        num_codewords: K.
        ema_decay: decay of the moving averages; None: the codebook learns by gradient.
        ema_epsilon: Laplace smoothing of the averaged cluster sizes.
        kmeans_init: whether the codebook waits for a k-means initialisation.
        dead_code_steps: restart a codeword unused for this many steps; None: never.
    """

    def __init__(self, layer, num_codewords, ema_decay=None, ema_epsilon=1e-5, kmeans_init=False, dead_code_steps=None):
        self.layer = layer
        self.num_codewords = num_codewords
        self.ema_decay = ema_decay
        self.ema_epsilon = ema_epsilon
        self.kmeans_init = kmeans_init
        self.dead_code_steps = dead_code_steps
        self._pending = threading.local()
        # Set by QuantizerTrainStep while its step runs (read when a call is traced): the step applies the upkeep.
        self.by_step = False
        # Whether the k-means start happened, kept in Python so that a traced call can refuse to train without it.
        self.initialized = not kmeans_init

    @property
    def active(self):
        """True when training steps move the codebook besides the optimizer (EMA or restarts)."""
        return self.ema_decay is not None or bool(self.dead_code_steps)

    def build(self, latent_dim):
        """Create the layer's upkeep state: EMA averages, idle counters, the k-means flag."""
        layer = self.layer
        # Every replica updates this state identically (from all-reduced
        # statistics), so the first replica's value is the value.
        state = dict(trainable=False, aggregation="only_first_replica")
        if self.ema_decay is not None:
            # Sonnet's ExponentialMovingAverage: a zero-initialised hidden value and a step counter.
            layer.ema_steps = layer.add_weight(shape=(), initializer="zeros", name="ema_steps", **state)
            layer.ema_cluster_size = layer.add_weight(
                shape=(self.num_codewords,), initializer="zeros", name="ema_cluster_size", **state
            )
            layer.ema_dw = layer.add_weight(
                shape=(latent_dim, self.num_codewords), initializer="zeros", name="ema_dw", **state
            )
        if self.dead_code_steps:
            layer.idle_steps = layer.add_weight(
                shape=(self.num_codewords,), initializer="zeros", name="idle_steps", **state
            )
        if self.kmeans_init:
            layer.codebook_initialized = layer.add_weight(
                shape=(), initializer="zeros", name="codebook_initialized", **state
            )

    def record(self, z_e, probs):
        """Keep one training call's codes ``z_e [N, d]`` and assignments ``probs [N, K]`` for ``apply``."""
        self._pending.codes = (ops.stop_gradient(z_e), ops.stop_gradient(probs))

    def apply_in_call(self):
        """Apply the upkeep inside the training call that recorded the codes (no ``QuantizerModel`` around it).

        A trainable codebook's restarts cannot be written from inside JAX's
        ``stateless_call``, which returns only non-trainable state: refused in one line.
        """
        trainable_restarts = self.dead_code_steps and self.layer.codebook.trainable
        if trainable_restarts and keras.backend.backend() == "jax" and compat.in_stateless_scope():
            raise ValueError(
                f"{type(self.layer).__name__}(dead_code_steps={self.dead_code_steps}) cannot restart its trainable "
                "codebook from inside a JAX training step; train it in a softvq_tf.QuantizerModel, or call "
                "layer.update_codebook() after each optimizer step of your own loop, or use ema_decay"
            )
        self.apply()

    def apply(self):
        """Apply the EMA update and the dead-codeword restarts for the recorded codes (once)."""
        pending, self._pending.codes = getattr(self._pending, "codes", None), None
        if pending is None:
            return
        z_e, probs = pending
        codebook, ema = ops.cast(self.layer.codebook, "float32"), None
        if self.ema_decay is not None:
            codebook, ema = self._ema_step(z_e, probs)
        if self.dead_code_steps:
            codebook = self._restart_dead_codewords(z_e, probs, codebook, ema)
        self.layer.codebook.assign(codebook)

    def _ema_step(self, z_e, probs):
        """Sonnet's ``VectorQuantizerEMA`` step with replica-summed statistics.

        Returns the new codebook ``[d, K]`` and ``(cluster_hidden, dw_hidden,
        debias)``, which a restart needs to reset a moved codeword's averages.
        """
        layer, decay = self.layer, self.ema_decay
        steps = layer.ema_steps + 1.0
        layer.ema_steps.assign(steps)
        cluster_sum = all_replicas(ops.sum(probs, 0))  # [K]
        code_sum = all_replicas(ops.matmul(ops.transpose(z_e), probs))  # [d, K]
        cluster_hidden = layer.ema_cluster_size - (layer.ema_cluster_size - cluster_sum) * (1 - decay)
        dw_hidden = layer.ema_dw - (layer.ema_dw - code_sum) * (1 - decay)
        layer.ema_cluster_size.assign(cluster_hidden)
        layer.ema_dw.assign(dw_hidden)
        debias = 1.0 - ops.power(decay, steps)
        cluster_size = cluster_hidden / debias
        n = ops.sum(cluster_size)
        smoothed = (cluster_size + self.ema_epsilon) / (n + self.num_codewords * self.ema_epsilon) * n
        return (dw_hidden / debias) / smoothed[None, :], (cluster_hidden, dw_hidden, debias)

    def _restart_dead_codewords(self, z_e, probs, codebook, ema):
        """Move each codeword idle for ``dead_code_steps`` onto a distinct random code of the global batch.

        The first B dead codewords each get a code; the rest wait a step. With
        an EMA codebook (``ema`` given), a moved codeword's averages restart as
        one sample at its new place.
        """
        layer = self.layer
        used = all_replicas(ops.sum(most_probable_one_hot(probs), 0)) > 0  # [K]
        idle = ops.where(used, 0.0, layer.idle_steps + 1.0)
        codes = all_replicas(z_e, gather=True)  # the global batch, [B, d]
        batch = ops.shape(codes)[0]
        dead = idle >= float(self.dead_code_steps)
        rank = ops.cumsum(ops.cast(dead, "int32")) - 1
        restart = dead & (rank < batch)
        order = ops.argsort(keras.random.uniform([batch], seed=layer.seed_generator))
        picked = ops.take(codes, ops.take(order, ops.clip(rank, 0, batch - 1), axis=0), axis=0)  # [K, d]
        codebook = ops.where(restart[None, :], ops.transpose(picked), codebook)
        layer.idle_steps.assign(ops.where(restart, 0.0, idle))
        count = ops.sum(ops.cast(restart, "float32"))
        layer.update_metric(layer.dead_code_restarts, count / replicas_in_sync())  # the metric sums over replicas
        if ema is not None:
            cluster_hidden, dw_hidden, debias = ema
            layer.ema_cluster_size.assign(ops.where(restart, debias, cluster_hidden))
            layer.ema_dw.assign(ops.where(restart[None, :], ops.transpose(picked) * debias, dw_hidden))
        return codebook

    def needs_initialization(self):
        """True while a ``kmeans_init`` codebook still waits for its k-means initialisation."""
        return self.kmeans_init and float(keras.ops.convert_to_numpy(self.layer.codebook_initialized)) == 0.0

    def check_initialized(self):
        """Refuse a training call of a ``kmeans_init`` codebook that has had no k-means start, naming the fix."""
        if not self.initialized:
            raise ValueError(
                f"{type(self.layer).__name__}(kmeans_init=True) has no k-means start yet: call "
                "layer.initialize_codebook(codes) before training, with codes [..., d] of the untrained encoder "
                f"(at least K={self.num_codewords} positions)"
            )

    def initialize(self, codes, seed=None):
        """Set the codebook to the k-means centres of ``codes [..., d]`` (at least K positions in all),
        deterministic under ``seed``.

        Every position is one code, as in ``call``: a grid ``[B, H, W, d]`` gives
        ``B * H * W`` codes. scikit-learn's k-means++ and Lloyd iterations; with an
        EMA codebook the averages restart from the centres. Marks the layer
        initialised, so a resumed or reloaded model is never initialised again.
        """
        from sklearn.cluster import KMeans  # noqa: PLC0415 (the layers load scikit-learn only for k-means init)

        layer = self.layer
        given = np.shape(codes)
        codes = np.asarray(codes, dtype=np.float64)
        codes = codes.reshape(-1, codes.shape[-1]) if codes.ndim >= 2 else codes  # [N, d]
        if codes.ndim != 2 or codes.shape[0] < self.num_codewords:
            raise ValueError(
                f"k-means initialisation needs at least K={self.num_codewords} codes [..., d], got shape {given}"
            )
        if not layer.built:
            units = layer.head_units(codes.shape[1])
            layer.build((None, codes.shape[1]), (None, units) if units else None)
        kmeans = KMeans(self.num_codewords, n_init=1, random_state=layer.seed if seed is None else seed).fit(codes)
        layer.codebook.assign(kmeans.cluster_centers_.T.astype(np.float32))  # [d, K]
        if self.ema_decay is not None:
            for variable in (layer.ema_steps, layer.ema_cluster_size, layer.ema_dw):
                variable.assign(ops.zeros(variable.shape, variable.dtype))
        if self.kmeans_init:
            layer.codebook_initialized.assign(1.0)
        self.initialized = True
