"""Codes of any leading shape: ``[B, d]``, ``[B, T, d]`` and ``[B, H, W, d]`` equal the flattened ``[N, d]`` call.

Output, loss and gradients (to the code, the head and the layer's weights) must
match, and the usage metrics must count every position. Runs on every Keras
backend (``tests/test_backends.py`` runs this folder under JAX and PyTorch).
"""

import keras
import numpy as np
import pytest

from softvq_tf.layers import make_bottleneck
from softvq_tf.layers.registry import applicable
from tests.portable.backend_grads import call_with_gradients

D, K = 4, 6
SHAPES = [(12,), (3, 4), (2, 3, 2)]  # leading axes: [B], [B, T], [B, H, W]
# Training calls draw noise in the noisy bottlenecks; compare those at inference.
TRAINING = {"ae": True, "vae": False, "info_dropout": False, "vq": True, "soft_vq": True, "fsq": True, "sqvae": False}
SETTINGS = {
    "vq_rotation": dict(name="vq", gradient_estimator="rotation"),
    "soft_vq_gaussian": dict(name="soft_vq", likelihood="gaussian"),
    "fsq_uniform_bias": dict(name="fsq", fsq_project_out_bias="uniform"),
}


def _layer(name):
    settings = dict(SETTINGS.get(name, {"name": name}))
    name = settings.pop("name")
    return make_bottleneck(name, **applicable(name, {"num_codewords": K, "fsq_levels": (3, 2), **settings}), seed=1)


def _inputs(layer, leading, seed=0):
    rng = np.random.default_rng(seed)
    z_e = rng.normal(size=(*leading, D)).astype(np.float32)
    units = layer.head_units(D)
    head = rng.normal(scale=0.5, size=(*leading, units)).astype(np.float32) if units else None
    return z_e, head


NAMES = [*TRAINING, *SETTINGS]


@pytest.mark.parametrize("leading", SHAPES[1:], ids=["sequence", "grid"])
@pytest.mark.parametrize("name", NAMES)
def test_a_shaped_call_equals_the_flattened_call_with_its_loss_and_gradients(name, leading):
    layer = _layer(name)
    training = TRAINING.get(name, True)
    z_e, head = _inputs(layer, leading)
    weights = np.random.default_rng(5).normal(size=z_e.shape).astype(np.float32)
    flat = [z_e.reshape(-1, D), None if head is None else head.reshape(-1, head.shape[-1])]
    out_flat, loss_flat, in_flat, var_flat = call_with_gradients(layer, flat, weights.reshape(-1, D), training)
    out, loss, grads_in, grads_var = call_with_gradients(layer, [z_e, head], weights, training)

    assert out.shape == z_e.shape
    np.testing.assert_allclose(out.reshape(-1, D), out_flat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, loss_flat, rtol=1e-5, atol=1e-7)
    for shaped, flat_grad in zip(grads_in, in_flat):
        np.testing.assert_allclose(shaped.reshape(flat_grad.shape), flat_grad, rtol=1e-4, atol=1e-6)
    assert len(grads_var) == len(var_flat) == len(layer.trainable_variables)
    for shaped, flat_grad in zip(grads_var, var_flat):
        assert (shaped is None) == (flat_grad is None)
        if shaped is not None:
            np.testing.assert_allclose(shaped, flat_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["vq", "soft_vq", "fsq", "sqvae"])
def test_usage_metrics_count_every_position(name):
    grid, rows = _layer(name), _layer(name)
    z_e, head = _inputs(grid, (2, 3, 2))
    grid(z_e, head, training=False)
    rows(z_e.reshape(-1, D), None if head is None else head.reshape(-1, head.shape[-1]), training=False)
    for metric in ("perplexity", "codewords_in_use"):
        shaped, flat = getattr(grid, metric), getattr(rows, metric)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(shaped.counts), keras.ops.convert_to_numpy(flat.counts))
    assert float(keras.ops.convert_to_numpy(keras.ops.sum(grid.perplexity.counts))) == pytest.approx(12.0)


@pytest.mark.parametrize("name", ["vq", "soft_vq", "sqvae"])
def test_indices_and_probabilities_keep_the_leading_shape(name):
    layer = _layer(name)
    z_e, head = _inputs(layer, (2, 3, 2))
    layer(z_e, head)
    indices = keras.ops.convert_to_numpy(layer.nearest_codeword_indices(z_e))
    assert indices.shape == (2, 3, 2)
    flat = keras.ops.convert_to_numpy(layer.nearest_codeword_indices(z_e.reshape(-1, D)))
    np.testing.assert_array_equal(indices.reshape(-1), flat)
    if name != "sqvae":
        probs = keras.ops.convert_to_numpy(layer.assignment_probabilities(z_e, head))
        assert probs.shape == (2, 3, 2, K)
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_fsq_code_and_indices_keep_the_leading_shape():
    layer = _layer("fsq")
    z_e, _ = _inputs(layer, (2, 3, 2))
    layer(z_e)
    code = layer.code(z_e)
    assert tuple(code.shape) == (2, 3, 2, 2)
    assert tuple(layer.tokens(z_e).shape) == (2, 3, 2)


@pytest.mark.parametrize("name", ["soft_vq", "vae", "info_dropout"])
@pytest.mark.parametrize(
    "z_shape, head_shape",
    [((2, 3, 3, D), (2, 3, 3, 5)), ((2, 3, 3, D), (2, 9, None)), ((2, 3, 3, D), (2, 3, 4, None))],
    ids=["width", "rank", "leading"],
)
def test_a_head_that_does_not_fit_is_refused_naming_both_shapes(name, z_shape, head_shape):
    layer = _layer(name)
    units = layer.head_units(D)
    head_shape = tuple(units if d is None else d for d in head_shape)
    assert head_shape != (*z_shape[:-1], units)  # each case is a misfit
    z_e = keras.ops.zeros(z_shape)
    head = keras.ops.zeros(head_shape)
    with pytest.raises(ValueError) as error:
        layer(z_e, head)
    message = str(error.value)
    assert str(z_shape).replace(" ", "") in message.replace(" ", "")
    assert str(head_shape).replace(" ", "") in message.replace(" ", "")


def test_a_head_that_does_not_fit_is_refused_when_a_functional_model_builds():
    z_e = keras.Input(shape=(7, 7, D))
    head = keras.Input(shape=(7, 7, K + 1))
    with pytest.raises(ValueError, match=r"head shape \(None, 7, 7, 7\) does not fit z_e shape \(None, 7, 7, 4\)"):
        _layer("soft_vq")(z_e, head)


def test_a_missing_head_and_an_unwanted_one_are_refused():
    with pytest.raises(ValueError, match="needs a head"):
        _layer("soft_vq")(keras.ops.zeros((2, 3, D)))
    with pytest.raises(ValueError, match="takes no head"):
        _layer("vq")(keras.ops.zeros((2, 3, D)), keras.ops.zeros((2, 3, K)))
    with pytest.raises(ValueError, match="rank >= 2"):
        _layer("vq")(keras.ops.zeros((D,)))
