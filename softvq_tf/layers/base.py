"""``Bottleneck``, the base class of every bottleneck layer, and ``IdentityBottleneck``, the plain autoencoder's.

Every bottleneck is a Keras layer called as ``layer(z_e, head)``: ``z_e`` is the
encoder's code ``[..., d]`` (one code ``[B, d]`` per image as in the paper, or
a sequence ``[B, T, d]`` or feature map ``[B, H, W, d]`` of codes) and ``head``
is the encoder's second linear head with the same leading axes, whose width
depends on the bottleneck (``head_units`` says how wide it must be; 0 when
unused). The layer returns the decoder input, shaped as ``z_e``, and adds its
own regulariser with ``add_loss``.

Written in ``keras.ops`` and ``keras.random`` only: they run on the
TensorFlow, JAX and PyTorch backends.
"""

import keras
from keras import ops

from softvq_tf import compat
from softvq_tf.layers.metrics import PACKAGE


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
        self.regularizer_loss = keras.metrics.Mean(name=self.metric_name("bottleneck_loss"))
        self._deferred = _DeferredMetricUpdates()
        self._code_width = None  # d, once built

    # The layer name under which a bottleneck logs its metrics without a prefix: the training
    # application's (and make_bottleneck's default), so the stored runs' histories keep their keys.
    PLAIN_METRICS_NAME = "bottleneck"

    def metric_name(self, metric):
        """The name this layer logs ``metric`` under: ``"{layer name}_{metric}"``, so that several bottlenecks in
        one model keep their own; plain ``metric`` for the layer named ``"bottleneck"``."""
        return metric if self.name == self.PLAIN_METRICS_NAME else f"{self.name}_{metric}"

    # The reconstruction term an ``Autoencoder`` minimises with this bottleneck (the SQ-VAE asks for another).
    reconstruction_objective = "normalised_mse"

    def head_units(self, latent_dim):
        """Width of the encoder's second head this bottleneck needs (0: none)."""
        return 0

    @property
    def maintains_codebook(self):
        """True when training steps update a codebook besides the optimizer (the quantizers' EMA or restarts)."""
        return False

    def update_codebook(self):
        """Apply the codebook upkeep of the last training call (nothing for a bottleneck without a codebook)."""

    def needs_codebook_init(self):
        """True while a codebook waits for its k-means initialisation."""
        return False

    def __call__(self, *args, **kwargs):
        self._deferred.pending = []  # deferred metric updates belong to the trace of the call that made them
        return super().__call__(*args, **kwargs)

    def build(self, z_e_shape, head_shape=None):
        self.check_shapes(z_e_shape, head_shape, head_given=head_shape is not None)
        self._code_width = z_e_shape[-1]

    def check_shapes(self, z_e_shape, head_shape=None, head_given=None):
        """Refuse codes of rank < 2, a code width other than the built one, and a head that does not fit ``z_e``
        (or is missing), naming the shapes."""
        z_e_shape = tuple(z_e_shape)
        name = type(self).__name__
        if len(z_e_shape) < 2:
            raise ValueError(f"{name} takes codes [..., d] of rank >= 2 (batch first), got z_e shape {z_e_shape}")
        built_width = self._code_width
        if built_width is not None and z_e_shape[-1] is not None and z_e_shape[-1] != built_width:
            raise ValueError(
                f"{name} was built for codes [..., {built_width}], got z_e shape {_shape_text(z_e_shape)}; "
                f"its code width d must stay {built_width}"
            )
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
            # Constant values: they are applied outside the gradient computation that made them.
            self._deferred.pending.append((metric, tuple(ops.stop_gradient(ops.convert_to_tensor(v)) for v in values)))
        else:
            metric.update_state(*values)

    @property
    def metrics(self):
        # Keras's JAX trainer reads every layer's metrics inside the scope that maps their variables
        # (compute_metrics, in any keras.Model): the updates this layer's forward pass deferred land there.
        pending = self._deferred.pending
        if pending and compat.mapped_in_stateless_scope(pending[0][0].variables[0]):
            self.update_deferred_metrics()
        return super().metrics

    def update_deferred_metrics(self):
        """Apply the metric updates deferred by the last JAX stateless call (``QuantizerModel.compute_loss`` and,
        in any model, Keras's ``compute_metrics`` do)."""
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
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``.
        head: must be None.
        training: unused.

    Returns:
        ``z_e``, in float32.

    Example:

    ```python
    import numpy as np
    from softvq_tf import IdentityBottleneck

    z = IdentityBottleneck()(np.ones((4, 8), "float32"))  # the code itself, [4, 8]
    ```
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)

    def call(self, z_e, head=None, training=None):
        return self._float32(z_e, head)[0]
