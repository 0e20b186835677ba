"""``QuantizerModel``: a ``keras.Model`` whose training step keeps its bottlenecks' codebooks and metrics.

The step lives in the mixin ``QuantizerTrainStep`` (``Autoencoder`` uses it):
Keras turns a ``Model`` subclass built as ``Cls(inputs, outputs)`` into a
functional class for good, so a subclassed model cannot share that class.

In any Keras model a quantizer's training call keeps its own codebook (EMA,
restarts), as Sonnet's EMA quantizer and ``BatchNormalization`` do. This step
does two things better:

- **The codebook upkeep after the optimizer step**, outside the gradient tape,
  from the codes of that step's forward pass: under ``MirroredStrategy`` a
  variable assigned inside the tape loses its gradient on the first replica,
  a trainable codebook's restarts cannot be written from inside a JAX
  ``stateless_call`` (which returns only non-trainable state), and it is the
  order the committed runs were trained in. The step marks its quantizers
  (``upkeep.by_step``) so that their calls only record. On TensorFlow and
  PyTorch it updates variables in place; on JAX, whose step is a pure function
  of the state, the upkeep runs on the optimizer step's new state in a
  ``keras.StatelessScope``, inside the same compiled step, and its writes go
  into the returned state.
- **Metrics updated in a layer's call** (the VQ loss, perplexity, codewords in
  use): Keras's JAX trainer does not map them into the forward pass
  (keras-team/keras#21639), so the layers defer them and ``compute_loss``,
  whose scope maps every metric, applies them. Elsewhere nothing is deferred.

Use it as the base of a subclassed model, or build a functional one with it:
``QuantizerModel(inputs, outputs)``.
"""

import keras

from softvq_tf import compat
from softvq_tf.layers import PACKAGE, Bottleneck


def _bottlenecks(layer):
    """Every ``Bottleneck`` inside ``layer`` (its sub-models included), each once."""
    found, stack, seen = [], list(getattr(layer, "layers", [])), set()
    while stack:
        child = stack.pop(0)
        if id(child) in seen:
            continue
        seen.add(id(child))
        if isinstance(child, Bottleneck):
            found.append(child)
        stack.extend(getattr(child, "layers", []))
    return found


class QuantizerTrainStep:
    """Mixin of a ``keras.Model``: its bottlenecks' codebook upkeep after each optimizer step, on every backend."""

    def update_deferred_metrics(self):
        """Apply the metric updates the bottlenecks deferred in a JAX stateless forward pass."""
        for bottleneck in _bottlenecks(self):
            bottleneck.update_deferred_metrics()

    def compute_loss(self, *args, **kwargs):
        self.update_deferred_metrics()
        return super().compute_loss(*args, **kwargs)

    def _maintained(self):
        return [b for b in _bottlenecks(self) if b.maintains_codebook]

    def train_step(self, *args):
        """Keras's step, then the codebook upkeep after the optimizer step, outside the tape.

        TensorFlow and PyTorch pass ``(data)`` and update variables in place;
        JAX passes ``(state, data)`` and returns the new state.
        """
        maintained = self._maintained()
        for bottleneck in maintained:  # their training calls record, this step applies (read when traced)
            bottleneck.upkeep.by_step = True
        try:
            if keras.backend.backend() == "jax":
                return self._stateless_train_step(maintained, *args)
            logs = super().train_step(*args)
        finally:
            for bottleneck in maintained:
                bottleneck.upkeep.by_step = False
        for bottleneck in maintained:
            bottleneck.update_codebook()
        if keras.backend.backend() == "tensorflow":
            logs = compat.multi_worker_logs(logs)
        return logs

    def _stateless_train_step(self, maintained, state, data):
        """JAX: run the upkeep on the state the optimizer step returned, in a stateless scope."""
        logs, state = super().train_step(state, data)
        if not maintained:
            return logs, state
        trainable, non_trainable, optimizer_variables, metrics = state
        groups = (
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (self.metrics_variables, metrics),
        )
        mapping = [pair for variables, values in groups for pair in zip(variables, values)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            for bottleneck in maintained:
                bottleneck.update_codebook()

        def current(variable, value):
            new = scope.get_current_value(variable)
            return value if new is None else new

        updated = [[current(v, value) for v, value in zip(*group)] for group in groups]
        return logs, (updated[0], updated[1], optimizer_variables, updated[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantizerModel(QuantizerTrainStep, keras.Model):
    """A ``keras.Model`` with ``QuantizerTrainStep``: functional, ``QuantizerModel(inputs, outputs)``, or subclassed."""
