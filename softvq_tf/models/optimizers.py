"""Adam as one fused kernel per variable.

Keras 3's ``Adam.update_step`` is written with a dozen separate element-wise
ops, each a full pass over the variable's memory. For the paper's MLP (3.8 M
parameters) that memory traffic, not the matmuls, bounds a CPU training step.
``FusedAdam`` computes the same update (same formula, same epsilon placement:
``var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``) with
TensorFlow's ``ResourceApplyAdam`` kernel, which reads and writes each buffer
once, as the authors' TF1 ``AdamOptimizer`` did. ``results/benchmarks.md``
has the measured effect; ``tests/test_model.py`` checks it matches Keras Adam.

The kernel is TensorFlow's; on the JAX and PyTorch backends ``FusedAdam`` is
Keras's ``Adam`` (same formula), so a model built with it runs anywhere.
"""

import keras

from softvq_tf import compat
from softvq_tf.layers import PACKAGE

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense update is TensorFlow's fused Adam kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        m, v = compat.adam_slots(self, variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(m),
            v=_handle(v),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (this replica's copy under tf.distribute)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
