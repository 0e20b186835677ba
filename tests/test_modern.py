"""Quantizers published after the paper: FSQ and the rotation trick, against small NumPy references."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from softvq_tf.layers import FiniteScalarQuantizer, VectorQuantizer, make_bottleneck, rotate_to


def _numpy_bound(z, levels):
    levels = np.asarray(levels, np.float64)
    half = (levels - 1) * (1 - 1e-3) / 2
    offset = np.where(levels % 2 == 0, 0.5, 0.0)
    return np.tanh(z + np.tan(offset / half)) * half - offset, half, offset


@pytest.mark.parametrize("levels", [(8, 4, 4), (8, 5, 5), (7, 5, 5, 5), (3,)])
def test_fsq_rounds_each_dimension_onto_its_levels(levels):
    layer = FiniteScalarQuantizer(levels, seed=0)
    z = np.random.default_rng(0).normal(scale=3.0, size=(4000, len(levels))).astype(np.float32)
    bounded, _, _ = _numpy_bound(z.astype(np.float64), levels)
    np.testing.assert_allclose(layer.bound(tf.constant(z)).numpy(), bounded, atol=1e-5)
    codes = layer.round_to_levels(tf.constant(z)).numpy()
    half_width = np.array([level // 2 for level in levels])
    np.testing.assert_allclose(codes, np.round(bounded) / half_width, atol=1e-6)
    for i, level in enumerate(levels):
        assert len(np.unique(np.round(codes[:, i] * half_width[i]))) == level  # every level reached, no more


def test_fsq_gradient_is_straight_through_the_rounding():
    levels = (8, 5, 5)
    layer = FiniteScalarQuantizer(levels, seed=0)
    z = tf.constant(np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(layer.round_to_levels(z))
    _, half, offset = _numpy_bound(z.numpy().astype(np.float64), levels)
    shift = np.tan(offset / half)
    expected = half * (1 - np.tanh(z.numpy() + shift) ** 2) / np.array([level // 2 for level in levels])
    np.testing.assert_allclose(tape.gradient(total, z).numpy(), expected, rtol=1e-4)


def test_fsq_code_indices_are_a_bijection_onto_the_implicit_codebook():
    levels = (4, 3, 2)
    layer = FiniteScalarQuantizer(levels)
    half_width = np.array([level // 2 for level in levels], np.float32)
    grid = np.array(list(itertools.product(*[range(level) for level in levels])), np.float32)
    codes = (grid - half_width) / half_width  # every code of the implicit codebook, scaled as quantize scales
    indices = layer.code_indices(tf.constant(codes)).numpy()
    assert sorted(indices.tolist()) == list(range(int(np.prod(levels))))


def test_fsq_layer_has_no_loss_and_counts_its_implicit_codebook():
    layer = make_bottleneck("fsq", fsq_levels="8,4,4", seed=0)
    z = tf.constant(np.random.default_rng(2).normal(size=(64, 16)).astype(np.float32))
    out = layer(z, training=True)
    assert out.shape == (64, 16) and layer.losses == [] and layer.num_codewords == 128
    assert 1 <= float(layer.codewords_in_use.result()) <= 64
    assert len(layer.trainable_weights) == 4  # the two projections
    clone = FiniteScalarQuantizer.from_config(layer.get_config())
    clone(z)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(z).numpy(), out.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="levels"):
        FiniteScalarQuantizer((8, 1))


def test_rotation_trick_value_is_the_codeword_and_gradient_the_closed_form():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(5, 4)).astype(np.float64)
    q = rng.normal(size=(5, 4)).astype(np.float64)
    g = rng.normal(size=(5, 4)).astype(np.float64)
    e_t = tf.constant(e)
    with tf.GradientTape() as tape:
        tape.watch(e_t)
        out = rotate_to(e_t, tf.constant(q))
        total = tf.reduce_sum(out * g)
    gradient = tape.gradient(total, e_t).numpy()
    np.testing.assert_allclose(out.numpy(), q, rtol=1e-10, atol=1e-12)
    for b in range(len(e)):
        u, v = e[b] / np.linalg.norm(e[b]), q[b] / np.linalg.norm(q[b])
        w = (u + v) / np.linalg.norm(u + v)
        rotation = np.eye(4) - 2 * np.outer(w, w) + 2 * np.outer(v, u)  # R u = v, a proper rotation
        np.testing.assert_allclose(rotation @ u, v, atol=1e-12)
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(4), atol=1e-12)
        scale = np.linalg.norm(q[b]) / np.linalg.norm(e[b])
        np.testing.assert_allclose(gradient[b], scale * rotation.T @ g[b], rtol=1e-9)


def test_vq_with_rotation_trick_outputs_the_nearest_codeword_and_round_trips():
    layer = VectorQuantizer(8, gradient_estimator="rotation", seed=0)
    z = tf.constant(np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32))
    out = layer(z, training=True)
    nearest = tf.gather(tf.transpose(layer.codebook), layer.nearest_codeword_indices(z))
    np.testing.assert_allclose(out.numpy(), nearest.numpy(), atol=1e-5)
    assert VectorQuantizer.from_config(layer.get_config()).gradient_estimator == "rotation"
    with pytest.raises(ValueError, match="gradient_estimator"):
        VectorQuantizer(8, gradient_estimator="sideways")


@pytest.mark.slow
@pytest.mark.parametrize("flags", [dict(bottleneck="fsq"), dict(bottleneck="vq", gradient_estimator="rotation")])
def test_modern_quantizers_train_and_export(flags, tmp_path):
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.fit import train

    keras.backend.clear_session()
    config = resolve_config("digits", steps=40, epoch_steps=20, out=str(tmp_path), **flags)
    result = train(config, verbose=0, log=lambda *a: None)
    assert np.isfinite(result.history["loss"]).all() and result.history["perplexity"][-1] >= 1
    assert (tmp_path / config.name / "encoder" / "saved_model.pb").exists()
