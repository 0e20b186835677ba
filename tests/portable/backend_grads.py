"""One call of a layer with its output, losses and gradients, on whichever Keras backend is loaded.

Keras has no backend-neutral gradient API, so this is the one place the
portable tests name TensorFlow, JAX or PyTorch.
"""

import keras
import numpy as np


def call_with_gradients(layer, inputs, weights, training=True):
    """``layer(*inputs)`` and the gradient of ``sum(output * weights) + sum(layer.losses)``.

    Returns ``(output, loss, input_gradients, variable_gradients)`` as NumPy arrays;
    the variable gradients follow ``layer.trainable_variables`` (None where no gradient reaches one).
    """
    backend = keras.backend.backend()
    inputs = [None if x is None else np.asarray(x, np.float32) for x in inputs]
    given = [i for i, x in enumerate(inputs) if x is not None]
    weights = np.asarray(weights, np.float32)
    if not layer.built:
        layer(*inputs, training=training)

    def objective(output, losses):
        loss = sum(keras.ops.sum(loss) for loss in losses) if losses else keras.ops.zeros(())
        return keras.ops.sum(output * keras.ops.convert_to_tensor(weights)) + loss, loss

    if backend == "tensorflow":
        import tensorflow as tf

        xs = [None if x is None else tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch([xs[i] for i in given])
            output = layer(*xs, training=training)
            total, loss = objective(output, layer.losses)
        grads = tape.gradient(total, [xs[i] for i in given] + [v.value for v in layer.trainable_variables])
        as_np = lambda g: None if g is None else np.asarray(g)  # noqa: E731
        return (
            np.asarray(output),
            float(loss),
            [as_np(g) for g in grads[: len(given)]],
            [as_np(g) for g in grads[len(given) :]],
        )
    if backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def f(trainable, xs):
            full = list(inputs)
            for i, x in zip(given, xs):
                full[i] = x
            output, _, losses = layer.stateless_call(
                trainable, non_trainable, *full, training=training, return_losses=True
            )
            total, loss = objective(output, losses)
            return total, (output, loss)

        (_, (output, loss)), (var_grads, in_grads) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
            trainable, [inputs[i] for i in given]
        )
        return np.asarray(output), float(loss), [np.asarray(g) for g in in_grads], [np.asarray(g) for g in var_grads]
    import torch

    xs = [None if x is None else torch.tensor(x, requires_grad=True) for x in inputs]
    for v in layer.trainable_variables:
        v.value.grad = None
    output = layer(*xs, training=training)
    total, loss = objective(output, layer.losses)
    total.backward()
    as_np = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
    return (
        as_np(output),
        float(as_np(loss)),
        [as_np(xs[i].grad) for i in given],
        [as_np(v.value.grad) for v in layer.trainable_variables],
    )
