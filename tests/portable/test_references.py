"""NumPy references of the bottlenecks' maths on codes ``[B, d]``, ``[B, T, d]`` and ``[B, H, W, d]``, every backend."""

import keras
import numpy as np
import pytest

from softvq_tf.layers import GaussianBottleneck, InformationDropout, SoftVectorQuantizer, VectorQuantizer

SHAPES = [(5,), (2, 3), (2, 3, 2)]
IDS = ["flat", "sequence", "grid"]
D, K = 3, 7


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _distances(z, codebook):
    return ((z[..., :, None] - codebook[None, :, :].reshape((1,) * (z.ndim - 1) + codebook.shape)) ** 2).sum(-2)


@pytest.mark.parametrize("leading", SHAPES, ids=IDS)
def test_hard_vq_output_tokens_and_loss(leading):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(*leading, D)).astype(np.float32)
    layer = VectorQuantizer(K, commitment=0.25, vq_weight=2.0, seed=0)
    out = _numpy(layer(z, training=True))
    codebook = _numpy(layer.codebook).astype(np.float64)
    nearest = _distances(z.astype(np.float64), codebook).argmin(-1)
    z_q = codebook.T[nearest]
    np.testing.assert_array_equal(_numpy(layer.nearest_codeword_indices(z)), nearest)
    np.testing.assert_allclose(out, z_q, rtol=1e-5, atol=1e-6)
    expected = 2.0 * (1 + 0.25) * np.mean((z - z_q) ** 2)  # per-element means over every position
    np.testing.assert_allclose(float(_numpy(layer.losses[0])), expected, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["original", "gaussian"])
@pytest.mark.parametrize("leading", SHAPES, ids=IDS)
def test_soft_vq_posterior_mean_and_loss(leading, likelihood):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(*leading, D)).astype(np.float32)
    s = rng.normal(scale=0.3, size=(*leading, K)).astype(np.float32)
    layer = SoftVectorQuantizer(K, commitment=2.5, vq_weight=3.0, likelihood=likelihood, seed=0)
    out = _numpy(layer(z, s, training=True))
    codebook = _numpy(layer.codebook).astype(np.float64)
    logits = -0.5 * np.exp(-2 * s) * _distances(z.astype(np.float64), codebook)
    logits = logits + (s if likelihood == "original" else -D * s)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    z_q = p @ codebook.T
    np.testing.assert_allclose(_numpy(layer.posterior(z, s)), p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out, z_q, rtol=1e-4, atol=1e-5)
    expected = 3.0 * (1 + 2.5) * np.mean((z - z_q) ** 2)
    np.testing.assert_allclose(float(_numpy(layer.losses[0])), expected, rtol=1e-4)


@pytest.mark.parametrize("leading", SHAPES, ids=IDS)
def test_gaussian_kl_is_summed_over_d_and_averaged_over_positions(leading):
    rng = np.random.default_rng(2)
    mu, logvar = rng.normal(size=(2, *leading, D)).astype(np.float32)
    layer = GaussianBottleneck(kl_weight=4.0, seed=0)
    np.testing.assert_allclose(_numpy(layer(mu, logvar, training=False)), mu)
    kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(-1)
    np.testing.assert_allclose(float(_numpy(layer.losses[0])), 4.0 * kl.mean(), rtol=1e-5)


@pytest.mark.parametrize("leading", SHAPES, ids=IDS)
def test_information_dropout_regulariser(leading):
    rng = np.random.default_rng(3)
    z, logits = rng.normal(size=(2, *leading, D)).astype(np.float32)
    layer = InformationDropout(alpha_max=0.7, weight=0.5, seed=0)
    layer(z, logits, training=False)
    alpha = 0.7 / (1 + np.exp(-logits))
    np.testing.assert_allclose(float(_numpy(layer.losses[0])), 0.5 * np.mean(-np.log(alpha / 0.7 + 1e-3)), rtol=1e-5)
