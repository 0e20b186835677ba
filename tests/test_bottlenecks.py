"""The bottleneck layers against small NumPy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from softvq_tf.layers import (
    CodebookPerplexity,
    CodewordsInUse,
    GaussianBottleneck,
    InformationDropout,
    SoftVectorQuantizer,
    VectorQuantizer,
    make_bottleneck,
)
from softvq_tf.layers.registry import PAPER_NAMES as BOTTLENECKS
from softvq_tf.layers.registry import applicable

B, D, K = 6, 4, 5


def _inputs(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, D)).astype(np.float32) * scale


def _built(layer, z, head=None):
    layer(tf.constant(z), None if head is None else tf.constant(head))
    return layer


def _numpy_soft_weights(z, codebook, log_sigma):
    d2 = ((z[:, :, None] - codebook[None, :, :]) ** 2).sum(1)  # [B, K]
    logits = -0.5 * np.exp(-2 * log_sigma) * d2 + log_sigma
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def test_hard_vq_returns_nearest_codeword():
    z = _inputs()
    layer = _built(VectorQuantizer(K, seed=1), z)
    codebook = layer.codebook.numpy()  # [D, K]
    nearest = ((z[:, :, None] - codebook[None]) ** 2).sum(1).argmin(1)
    np.testing.assert_allclose(layer(tf.constant(z)).numpy(), codebook[:, nearest].T, atol=1e-6)
    np.testing.assert_array_equal(layer.nearest_codeword_indices(z).numpy(), nearest)


@pytest.mark.parametrize("cls", [VectorQuantizer, SoftVectorQuantizer])
def test_straight_through_gradient_is_identity(cls):
    z = tf.constant(_inputs())
    head = tf.zeros([B, K])
    layer = cls(K, seed=1)
    upstream = tf.constant(np.random.default_rng(3).normal(size=(B, D)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(z)
        out = layer(z, head if cls is SoftVectorQuantizer else None)
        decoder_side = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(tape.gradient(decoder_side, z).numpy(), upstream.numpy(), atol=1e-6)


def test_hard_vq_codebook_gradient_comes_only_from_codebook_term():
    z = _inputs()
    w, beta = 3.0, 2.5
    layer = _built(VectorQuantizer(K, commitment=beta, vq_weight=w, seed=1), z)
    with tf.GradientTape(persistent=True) as tape:
        out = layer(tf.constant(z))
        loss = tf.add_n(layer.losses)
        decoder_side = tf.reduce_sum(out**2)
    assert tape.gradient(decoder_side, layer.codebook) is None or not np.any(
        tape.gradient(decoder_side, layer.codebook)
    )
    codebook = layer.codebook.numpy()
    nearest = ((z[:, :, None] - codebook[None]) ** 2).sum(1).argmin(1)
    expected = np.zeros_like(codebook)
    for b, k in enumerate(nearest):  # d/de_k of w * mean_{b,i} (z_bi - e_ik)^2; the commitment term is stopped
        expected[:, k] += w * 2 * (codebook[:, k] - z[b]) / (B * D)
    np.testing.assert_allclose(tape.gradient(loss, layer.codebook).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_soft_vq_matches_numpy_reference():
    z = _inputs()
    log_sigma = np.random.default_rng(1).normal(size=(B, K)).astype(np.float32) * 0.5
    layer = _built(SoftVectorQuantizer(K, seed=2), z, log_sigma)
    codebook = layer.codebook.numpy()
    p = _numpy_soft_weights(z.astype(np.float64), codebook.astype(np.float64), log_sigma.astype(np.float64))
    np.testing.assert_allclose(layer.posterior(z, log_sigma).numpy(), p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        layer(tf.constant(z), tf.constant(log_sigma)).numpy(), p @ codebook.T, rtol=1e-4, atol=1e-5
    )
    # The notebook's loss, term by term: tf.reduce_mean over batch and latent dimensions.
    w, beta = layer.vq_weight, layer.commitment
    zq = p @ codebook.T
    e_latent_loss = np.mean((zq - z) ** 2)
    q_latent_loss = np.mean((zq - z) ** 2)
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), w * (q_latent_loss + beta * e_latent_loss), rtol=1e-4)


@pytest.mark.parametrize("likelihood", ["original", "gaussian"])
def test_soft_vq_stays_finite_for_extreme_inputs(likelihood):
    layer = SoftVectorQuantizer(K, likelihood=likelihood, seed=0)
    z = tf.constant(np.array([[0.0] * D, [1e3 / np.sqrt(D)] * D, [-700.0] * D], np.float32))  # distances up to ~1e6
    z = tf.concat([z] * 7, axis=0)
    log_sigma = tf.constant(np.linspace(-20, 20, 21 * K).reshape(21, K).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch([z, log_sigma])
        out = layer(z, log_sigma, training=True)
        loss = tf.add_n(layer.losses) + tf.reduce_sum(out)
    assert np.all(np.isfinite(layer.distances(z).numpy())) and layer.distances(z).numpy().max() > 1e6 * 0.9
    assert np.all(np.isfinite(out.numpy())) and np.isfinite(float(loss))
    for g in tape.gradient(loss, [z, log_sigma, layer.codebook]):
        assert np.all(np.isfinite(g.numpy()))


def test_soft_vq_tends_to_hard_vq_as_sigma_vanishes():
    z = _inputs()
    soft = _built(SoftVectorQuantizer(K, seed=1), z, np.zeros((B, K), np.float32))
    hard = _built(VectorQuantizer(K, seed=1), z)
    hard.codebook.assign(soft.codebook)
    errors = [
        np.abs(soft(tf.constant(z), tf.fill([B, K], s)).numpy() - hard(tf.constant(z)).numpy()).max()
        for s in (0.0, -2.0, -10.0)
    ]
    assert errors[0] > errors[-1] and errors[-1] < 1e-5


def test_vae_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(B, D)), rng.normal(size=(B, D))
    var = np.exp(logvar)
    expected = 0.5 * (var + mu**2 - 1 - logvar).sum(1)  # KL(N(mu, var) || N(0, 1)) per sample
    np.testing.assert_allclose(
        GaussianBottleneck.kl_divergence(tf.constant(mu), tf.constant(logvar)).numpy(), expected, rtol=1e-6
    )
    layer = GaussianBottleneck(kl_weight=20.0, seed=0)
    layer(tf.constant(mu, tf.float32), tf.constant(logvar, tf.float32), training=True)
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), 20.0 * expected.mean(), rtol=1e-5)


def test_vae_samples_in_training_and_uses_the_mean_at_inference():
    mu = tf.constant(_inputs())
    layer = GaussianBottleneck(seed=0)
    np.testing.assert_array_equal(layer(mu, tf.zeros_like(mu), training=False).numpy(), mu.numpy())
    assert not np.allclose(layer(mu, tf.zeros_like(mu), training=True).numpy(), mu.numpy())


def test_information_dropout_rate_lies_in_open_closed_interval():
    layer = InformationDropout(alpha_max=0.7)
    head = tf.constant([[-1e4, -30.0, 0.0, 30.0, 1e4]])
    alpha = layer.dropout_rate(head).numpy()
    assert np.all(alpha >= 0) and np.all(alpha <= 0.7)
    assert np.all(layer.dropout_rate(tf.constant([[-30.0, 0.0, 30.0]])).numpy() > 0)
    out = layer(tf.ones([1, 5]), head, training=True)
    assert np.all(np.isfinite(out.numpy())) and np.isfinite(float(tf.add_n(layer.losses)))


@pytest.mark.parametrize("d", [1, 16, 64, 256])
def test_codebook_initialised_by_uniform_unit_scaling(d):
    layer = _built(VectorQuantizer(512, seed=0), np.zeros((1, d), np.float32))
    values = layer.codebook.numpy()
    limit = np.sqrt(3.0 / d)
    assert values.shape == (d, 512)
    assert values.min() >= -limit and values.max() <= limit
    assert values.max() > 0.9 * limit and values.min() < -0.9 * limit  # fills the interval


def test_usage_metrics_match_numpy():
    probs = np.array([[0.7, 0.3, 0, 0, 0], [0.1, 0.9, 0, 0, 0], [0, 0, 1, 0, 0]], np.float32)
    perplexity, in_use = CodebookPerplexity(K), CodewordsInUse(K)
    perplexity.update_state(probs[:2])
    perplexity.update_state(probs[2:])
    in_use.update_state(probs)
    avg = probs.mean(0)
    nz = avg[avg > 0]
    np.testing.assert_allclose(float(perplexity.result()), np.exp(-(nz * np.log(nz)).sum()), rtol=1e-5)
    assert float(in_use.result()) == 3.0
    in_use.reset_state()
    assert float(in_use.result()) == 0.0


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_every_layer_survives_config_round_trip(name):
    settings = dict(num_codewords=K, kl_weight=2.0, commitment=2.0, vq_weight=3.0, noise_std=0.1)
    layer = make_bottleneck(name, **applicable(name, settings), seed=4)
    z = tf.constant(_inputs())
    head_units = layer.head_units(D)
    head = tf.constant(np.random.default_rng(0).normal(size=(B, head_units)).astype(np.float32)) if head_units else None
    out = layer(z, head)
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    clone(z, head)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(z, head).numpy(), out.numpy(), atol=1e-6)
    assert len(layer.trainable_weights) == (1 if name in ("vq", "soft_vq") else 0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: VectorQuantizer(0), "num_codewords"),
        (lambda: SoftVectorQuantizer(4, noise_std=-1), "noise_std"),
        (lambda: SoftVectorQuantizer(4, likelihood="laplace"), "likelihood"),
        (lambda: GaussianBottleneck(kl_weight=-1), "kl_weight"),
        (lambda: make_bottleneck("pca"), "unknown bottleneck"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_hard_vq_loss_is_the_notebooks_per_element_mean():
    z = _inputs()
    layer = _built(VectorQuantizer(K, commitment=2.5, vq_weight=3.0, seed=1), z)
    zq = layer(tf.constant(z)).numpy()
    mse = np.mean((zq - z) ** 2)  # tf.reduce_mean((quantized - z) ** 2): over the batch AND the d dimensions
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), 3.0 * (mse + 2.5 * mse), rtol=1e-5)
    assert float(tf.add_n(layer.losses)) < 3.0 * 3.5 * ((zq - z) ** 2).sum(1).mean()  # not the sum over d


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_bottlenecks_compute_in_float32_under_mixed_bfloat16(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        settings = dict(num_codewords=K, kl_weight=1.0, commitment=2.5, vq_weight=3.0, noise_std=0.1)
        layer = make_bottleneck(name, **applicable(name, settings), seed=0)
        z = tf.cast(tf.constant(_inputs()), tf.bfloat16)  # what a bf16 encoder hands over
        units = layer.head_units(D)
        head = tf.cast(tf.zeros([B, units]), tf.bfloat16) if units else None
        out = layer(z, head, training=True)
        assert layer.compute_dtype == "float32" and out.dtype == tf.float32
        assert all(loss.dtype == tf.float32 for loss in layer.losses)
        if name in ("vq", "soft_vq"):
            assert layer.codebook.dtype == "float32"
            assert layer.distances(z).dtype == tf.float32
        if name == "soft_vq":
            assert layer.posterior(z, head).dtype == tf.float32
        if name in ("vae", "beta_vae"):
            assert GaussianBottleneck.kl_divergence(tf.cast(z, tf.float32), tf.zeros([B, D])).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_layer_contract(name, tmp_path):
    """In the manner of Keras's ``run_layer_test``: build, call in training and inference, losses, config, and
    save/reload inside a functional model."""
    settings = dict(num_codewords=K, kl_weight=1.0, commitment=2.5, vq_weight=3.0, noise_std=0.1)
    layer = make_bottleneck(name, **applicable(name, settings), seed=0)
    units = layer.head_units(D)
    assert not layer.built
    z_in = keras.Input((D,))
    head_in = keras.Input((units,)) if units else None
    output = layer(z_in, head_in)
    assert layer.built and output.shape == (None, D)
    assert len(layer.trainable_weights) == (1 if name in ("vq", "soft_vq") else 0)  # the codebook, or nothing
    model = keras.Model([z_in, head_in] if units else z_in, output)
    z = _inputs()
    head = np.random.default_rng(1).normal(size=(B, units)).astype(np.float32) if units else None
    inputs = [z, head] if units else z
    for training in (True, False):
        out = model(inputs, training=training)
        assert out.shape == (B, D) and out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))
        assert len(model.losses) == (0 if name == "ae" else 1)  # the bottleneck's regulariser, once per call
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        reloaded(inputs, training=False).numpy(), model(inputs, training=False).numpy(), atol=1e-6
    )
