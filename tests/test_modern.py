"""Quantizers published after the paper: FSQ, the SQ-VAE and the rotation trick, against small NumPy references."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from softvq_tf.layers import (
    FiniteScalarQuantizer,
    StochasticVectorQuantizer,
    VectorQuantizer,
    make_bottleneck,
    rotate_to,
)


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


def test_fsq_code_is_the_bounded_projection_the_decoder_reads_before_rounding():
    levels = (8, 4, 4)
    layer = FiniteScalarQuantizer(levels, seed=0)
    z_e = np.random.default_rng(3).normal(size=(256, 16)).astype(np.float32)
    out = layer(tf.constant(z_e))
    project_in, bias_in, project_out, bias_out = (w.numpy() for w in layer.weights)
    bounded, _, _ = _numpy_bound((z_e @ project_in + bias_in).astype(np.float64), levels)
    half_width = np.array([level // 2 for level in levels])
    code = layer.code(tf.constant(z_e)).numpy()
    np.testing.assert_allclose(code, bounded / half_width, atol=1e-5)
    rounded = np.round(code * half_width) / half_width  # rounding the code gives what the decoder gets
    np.testing.assert_allclose(out.numpy(), rounded @ project_out + bias_out, atol=1e-5)


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


def _sqvae(**kwargs):
    layer = StochasticVectorQuantizer(5, seed=0, **kwargs)
    layer.build((None, 3))
    return layer


def _numpy_logits(layer, z):
    codebook = layer.codebook.numpy().astype(np.float64)  # [d, K]
    variance = 1.0 + np.exp(float(layer.log_variance.numpy()))
    return -0.5 * ((z[:, :, None] - codebook[None]) ** 2).sum(axis=1) / variance, codebook, variance


def test_sqvae_assignment_logits_and_latent_loss_match_numpy():
    layer = _sqvae()
    layer.log_variance.assign(0.3)
    z = np.random.default_rng(5).normal(size=(7, 3))
    logits, codebook, variance = _numpy_logits(layer, z)
    np.testing.assert_allclose(layer.logits(tf.constant(z, tf.float32)).numpy(), logits, rtol=1e-5, atol=1e-5)
    z_q = np.random.default_rng(6).normal(size=(7, 3))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = np.mean((p * np.log(p)).sum(1) + ((z - z_q) ** 2).sum(1) / (2 * variance))
    loss = layer.latent_loss(tf.constant(z, tf.float32), tf.constant(z_q, tf.float32), tf.constant(logits, tf.float32))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_sqvae_training_samples_codewords_with_the_posterior_probabilities():
    """At a temperature near 0 the Gumbel-softmax sample is one-hot, drawn with p = softmax(logits) (Gumbel-max)."""
    layer = _sqvae(temperature_decay=1e3)  # tau = exp(-1000 step): a hard sample from the first step
    z = np.tile(np.array([[0.3, -0.2, 0.5]]), (20000, 1))
    out = layer(tf.constant(z, tf.float32), training=True).numpy()
    logits, codebook, _ = _numpy_logits(layer, z[:1])
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    chosen = np.argmin(((out[:, :, None] - codebook[None]) ** 2).sum(1), axis=1)
    assert np.allclose(out, codebook.T[chosen], atol=1e-5)  # every sample is a codeword
    frequencies = np.bincount(chosen, minlength=5) / len(z)
    tolerance = 4 * np.sqrt(p * (1 - p) / len(z)) + 1e-3  # four binomial standard errors
    assert np.all(np.abs(frequencies - p) <= tolerance), (frequencies, p)
    assert p.max() < 0.9  # a real spread of probabilities, not one certain codeword


def test_sqvae_anneals_its_temperature_per_step_and_is_deterministic_at_inference():
    layer = _sqvae(temperature_decay=0.1)
    z = tf.constant(np.random.default_rng(7).normal(size=(9, 3)), tf.float32)
    for step in range(1, 4):
        layer.temperature_metric.reset_state()
        layer(z, training=True)
        assert float(layer.step.numpy()) == step
        np.testing.assert_allclose(float(layer.temperature_metric.result()), np.exp(-0.1 * step), rtol=1e-6)
    first, second = layer(z, training=False).numpy(), layer(z, training=False).numpy()
    assert float(layer.step.numpy()) == 3  # inference takes no step
    logits, codebook, _ = _numpy_logits(layer, z.numpy().astype(np.float64))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, codebook.T[np.argmax(logits, axis=1)], atol=1e-6)  # the nearest codeword


def test_sqvae_gradient_reaches_codes_codebook_and_variance_and_round_trips():
    layer = _sqvae()
    z = tf.constant(np.random.default_rng(8).normal(size=(9, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        out = layer(z, training=True)
        decoder_side = tf.reduce_sum(out**2)
        total = decoder_side + tf.add_n(layer.losses)
    for source in (z, layer.codebook, layer.log_variance):
        gradient = tape.gradient(decoder_side, source)  # no straight-through copy: through the relaxed sample
        assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
    assert all(g is not None for g in tape.gradient(total, layer.trainable_weights))
    assert [w.name for w in layer.trainable_weights] == ["codebook", "log_variance"]
    clone = StochasticVectorQuantizer.from_config(layer.get_config())
    clone.build((None, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(z, training=False).numpy(), layer(z, training=False).numpy())
    with pytest.raises(ValueError, match="temperature_decay"):
        StochasticVectorQuantizer(8, temperature_decay=-1.0)


def test_sqvae_autoencoder_minimises_the_authors_log_error_and_reports_the_nmse():
    from softvq_tf.models import Autoencoder

    model = Autoencoder("mlp", (8, 8, 1), 4, make_bottleneck("sqvae", num_codewords=6, seed=0), data_variance=0.5)
    images = tf.constant(np.random.default_rng(9).uniform(size=(10, 8, 8, 1)), tf.float32)
    reconstructions = model(images, training=False)
    loss = float(model.compute_loss(images, images, reconstructions))
    squared = ((reconstructions.numpy() - images.numpy()) ** 2).reshape(10, -1)
    expected = 32.0 * np.log(squared.sum(1).mean()) + float(tf.add_n(model.losses))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(float(model.reconstruction_loss.result()), squared.mean() / 0.5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags", [dict(bottleneck="fsq"), dict(bottleneck="sqvae"), dict(bottleneck="vq", gradient_estimator="rotation")]
)
def test_modern_quantizers_train_and_export(flags, tmp_path):
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.fit import train

    keras.backend.clear_session()
    config = resolve_config("digits", steps=40, epoch_steps=20, out=str(tmp_path), **flags)
    result = train(config, verbose=0, log=lambda *a: None)
    assert np.isfinite(result.history["loss"]).all() and result.history["perplexity"][-1] >= 1
    assert (tmp_path / config.name / "encoder" / "saved_model.pb").exists()
    if flags["bottleneck"] == "fsq":  # FSQ's own code is probed beside z_e, from the saved autoencoder
        from softvq_tf.experiments import scoring
        from softvq_tf.training.data import load_splits

        run_dir = str(tmp_path / config.name)
        row = scoring.score_run(run_dir, config, load_splits("digits"), scoring.probe_settings(3, 1), log=print)
        assert 0 <= row["code"]["acc"] <= 100 and 0 <= row["code"]["nmi"] <= 1
        plain, code_row = scoring.with_code_rows([row])
        assert "code" not in plain and code_row["variant"].endswith(scoring.CODE_LABEL)
        assert code_row["acc"] == row["code"]["acc"] and code_row["seed"] == row["seed"]


@pytest.mark.slow
def test_fsq_on_real_fashion_mnist_keeps_its_codes_only_with_the_decoder_starting_at_the_data_mean(tmp_path):
    """From a zero output bias the first updates push every code the same way into tanh's saturation, and FSQ
    ends with one code for all images (seen on 20,000 Fashion-MNIST images at two level sets and three
    learning rates, and in a full 20k-step run); from the data mean it spreads over the implicit codebook."""
    from conftest import FASHION

    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.data import Splits, load_splits
    from softvq_tf.training.fit import train

    full = load_splits("fashion_mnist", FASHION)
    splits = Splits(full.x_train[:3000], full.y_train[:3000], full.x_eval[:500], full.y_eval[:500])
    in_use = {}
    for output_bias in ("data_mean", "zeros"):
        keras.backend.clear_session()
        config = resolve_config(
            "fashion_mnist",
            "fsq",
            steps=300,
            batch_size=64,
            epoch_steps=100,
            output_bias=output_bias,
            data_dir=FASHION,
            out=str(tmp_path),
        )
        result = train(config, verbose=0, log=lambda *a: None, splits=splits)
        in_use[output_bias] = result.history["codewords_in_use"][-1]
    assert in_use["data_mean"] >= 16 and in_use["zeros"] <= 2, in_use


def test_fsq_output_bias_starts_as_pytorch_linear_when_asked_and_round_trips():
    layer = FiniteScalarQuantizer((8, 8, 8), project_out_bias="uniform", seed=3)
    layer(np.zeros((2, 5, 16), np.float32))
    bias = layer.bias_out.numpy()
    assert np.all(np.abs(bias) <= 1 / np.sqrt(3)) and np.std(bias) > 0.1  # U(-1/sqrt(n), 1/sqrt(n)), n = 3
    again = FiniteScalarQuantizer.from_config(layer.get_config())
    again(np.zeros((2, 5, 16), np.float32))
    np.testing.assert_array_equal(again.bias_out.numpy(), bias)  # seeded
    default = FiniteScalarQuantizer((8, 8, 8), seed=3)
    default(np.zeros((2, 16), np.float32))
    assert not np.any(default.bias_out.numpy())  # Keras's zeros, as every run before the option
    with pytest.raises(ValueError, match="project_out_bias"):
        FiniteScalarQuantizer((8, 8), project_out_bias="ones")
