"""Saving, reloading and training on every backend: the layers in a model, and the codebook upkeep inside ``fit``."""

import os

import keras
import numpy as np
import pytest

from softvq_tf.layers import VectorQuantizer, make_bottleneck
from softvq_tf.layers.registry import applicable
from softvq_tf.models import Autoencoder, FusedAdam, QuantizerModel

NAMES = ["ae", "vae", "info_dropout", "vq", "soft_vq", "fsq", "sqvae"]


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name", NAMES)
def test_each_bottleneck_round_trips_its_config_and_weights(name):
    layer = make_bottleneck(name, **applicable(name, {"num_codewords": 8}), seed=3)
    z_e = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype(np.float32)
    head = np.zeros((2, 3, 3, layer.head_units(4)), np.float32) if layer.head_units(4) else None
    expected = _numpy(layer(z_e, head))
    clone = type(layer).from_config(layer.get_config())
    clone(z_e, head)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_numpy(clone(z_e, head)), expected, rtol=1e-6)


def _spatial_model(K=8, d=4):
    images = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(images)  # [B, 4, 4, 8]
    z_e = keras.layers.Conv2D(d, 1)(h)
    log_sigma = keras.layers.Conv2D(K, 1)(h)  # per position, per codeword
    z_q = make_bottleneck("soft_vq", num_codewords=K, seed=0, name="bottleneck")(z_e, log_sigma)
    out = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(z_q)
    return QuantizerModel(images, out)


def test_a_functional_quantizer_model_with_a_grid_of_codes_fits_saves_and_reloads(tmp_path):
    model = _spatial_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8), loss="mse")
    x = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
    history = model.fit(x, x, batch_size=16, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    # The layer's metrics reach the logs on every backend (on JAX through the deferred updates).
    assert 1.0 <= history["perplexity"][-1] <= 8.0 and history["bottleneck_loss"][-1] > 0
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, QuantizerModel)
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), rtol=1e-5)


def test_the_autoencoder_fits_saves_and_reloads(tmp_path):
    model = Autoencoder("mlp", (8, 8, 1), 4, make_bottleneck("soft_vq", num_codewords=8, seed=0))
    model.compile(optimizer=FusedAdam(1e-3))
    x = np.random.default_rng(1).random((64, 8, 8, 1), dtype=np.float32)
    history = model.fit(x, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1]) and history["reconstruction_loss"][-1] > 0
    path = os.path.join(tmp_path, "ae.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), rtol=1e-5)


def _ema_reference(z, codebook, decay, epsilon):
    """One step of Sonnet's VectorQuantizerEMA from zero averages, in NumPy: the new codebook [d, K]."""
    K = codebook.shape[1]
    distances = (z**2).sum(1, keepdims=True) - 2 * z @ codebook + (codebook**2).sum(0, keepdims=True)
    onehot = np.eye(K)[distances.argmin(1)]
    cluster = onehot.sum(0) * (1 - decay) / (1 - decay)
    dw = z.T @ onehot * (1 - decay) / (1 - decay)
    n = cluster.sum()
    smoothed = (cluster + epsilon) / (n + K * epsilon) * n
    return dw / smoothed[None, :]


def test_the_ema_update_runs_inside_fit_as_one_numpy_step():
    """lr = 0 keeps the encoder fixed, so one step's codes are the encoder's codes after fit."""
    decay, epsilon = 0.9, 1e-5
    vq = VectorQuantizer(16, ema_decay=decay, ema_epsilon=epsilon, seed=0)
    model = Autoencoder("mlp", (8, 8, 1), 4, vq)
    model.compile(optimizer=keras.optimizers.Adam(0.0))
    x = np.random.default_rng(2).random((32, 8, 8, 1), dtype=np.float32)
    model(x[:1])
    before = _numpy(vq.codebook).astype(np.float64)
    model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0)
    z = _numpy(model.encode(x)[0]).astype(np.float64)
    np.testing.assert_allclose(_numpy(vq.codebook), _ema_reference(z, before, decay, epsilon), rtol=1e-4, atol=1e-5)
    assert float(_numpy(vq.ema_steps)) == 1.0


def test_dead_codewords_restart_on_distinct_codes_of_the_batch_inside_fit():
    vq = VectorQuantizer(64, dead_code_steps=1, seed=0, name="vq")
    model = Autoencoder("mlp", (8, 8, 1), 4, vq)
    model.compile(optimizer=keras.optimizers.Adam(0.0))
    x = np.random.default_rng(3).random((32, 8, 8, 1), dtype=np.float32)
    model(x[:1])
    before = _numpy(vq.codebook)
    history = model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    after, z = _numpy(vq.codebook), _numpy(model.encode(x)[0])
    moved = np.where(np.abs(after - before).max(0) > 0)[0]
    used = len(set(((z**2).sum(1, keepdims=True) - 2 * z @ before + (before**2).sum(0)).argmin(1)))
    assert len(moved) == min(64 - used, 32) == history["vq_dead_code_restarts"][-1]
    matches = [np.where(np.abs(z - after[:, k]).max(1) < 1e-6)[0] for k in moved]
    assert all(len(m) == 1 for m in matches) and len({int(m[0]) for m in matches}) == len(moved)
