"""Codebook-collapse remedies: EMA codebook, k-means initialisation, dead-codeword restarts."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from softvq_tf.layers import SoftVectorQuantizer, VectorQuantizer, make_bottleneck
from softvq_tf.layers.registry import applicable
from softvq_tf.training.config import resolve_config, run_identity

B, D, K = 8, 3, 4


def _codes(seed=0, n=B):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def _numpy_ema(codebook, batches, decay, eps):
    """Sonnet's VectorQuantizerEMA in NumPy: zero-debiased averages, Laplace-smoothed cluster sizes."""
    k = codebook.shape[1]
    hidden_n, hidden_dw = np.zeros(k), np.zeros_like(codebook, dtype=np.float64)
    for t, z in enumerate(batches, start=1):
        nearest = ((z[:, :, None] - codebook[None]) ** 2).sum(1).argmin(1)
        onehot = np.eye(k)[nearest]
        hidden_n -= (hidden_n - onehot.sum(0)) * (1 - decay)
        hidden_dw -= (hidden_dw - z.T @ onehot) * (1 - decay)
        size, dw = hidden_n / (1 - decay**t), hidden_dw / (1 - decay**t)
        n = size.sum()
        smoothed = (size + eps) / (n + k * eps) * n
        codebook = dw / smoothed[None, :]
    return codebook


def test_ema_codebook_update_equals_the_closed_form():
    batches = [_codes(s) for s in range(3)]
    layer = VectorQuantizer(K, ema_decay=0.9, ema_epsilon=1e-3, seed=0)
    layer(tf.constant(batches[0]))
    start = layer.codebook.numpy().astype(np.float64)
    for z in batches:
        layer(tf.constant(z), training=True)
        layer.update_codebook()
    np.testing.assert_allclose(layer.codebook.numpy(), _numpy_ema(start, batches, 0.9, 1e-3), rtol=1e-5, atol=1e-6)
    # A codeword used once sits at the mean of its codes after one step (debiasing, no shrink towards 0).
    one = VectorQuantizer(K, ema_decay=0.99, seed=0)
    one(tf.constant(batches[0]))
    codebook = one.codebook.numpy()
    one(tf.constant(batches[0]), training=True)
    one.update_codebook()
    nearest = ((batches[0][:, :, None] - codebook[None]) ** 2).sum(1).argmin(1)
    k = nearest[0]
    np.testing.assert_allclose(one.codebook.numpy()[:, k], batches[0][nearest == k].mean(0), rtol=1e-3)


def test_ema_codebook_has_no_gradient_and_only_the_commitment_loss():
    z = tf.constant(_codes())
    layer = VectorQuantizer(K, commitment=2.5, vq_weight=3.0, ema_decay=0.99, seed=0)
    out = layer(z)
    assert not layer.codebook.trainable and layer.trainable_weights == []
    np.testing.assert_allclose(
        float(tf.add_n(layer.losses)), 3.0 * 2.5 * np.mean((out.numpy() - z.numpy()) ** 2), rtol=1e-5
    )
    before = layer.codebook.numpy()
    layer(z, training=False)
    layer.update_codebook()
    np.testing.assert_array_equal(layer.codebook.numpy(), before)  # inference never moves the codebook
    with pytest.raises(ValueError, match="ema_decay"):
        SoftVectorQuantizer(K, ema_decay=0.99)


@pytest.mark.parametrize("cls", [VectorQuantizer, SoftVectorQuantizer])
def test_dead_codeword_moves_onto_a_live_code_and_perplexity_rises(cls):
    z = _codes()
    layer = cls(K, dead_code_steps=2, seed=0)
    head = tf.fill([B, K], -3.0) if cls is SoftVectorQuantizer else None  # sharp posteriors
    layer(tf.constant(z), head)
    codebook = layer.codebook.numpy()
    codebook[:, 1:] = 50.0  # three codewords far from every code: only codeword 0 is used
    layer.codebook.assign(codebook)
    probs = layer.assignment_probabilities(z, head).numpy()
    before = np.exp(-np.sum(probs.mean(0)[probs.mean(0) > 0] * np.log(probs.mean(0)[probs.mean(0) > 0])))
    for step in range(2):
        layer(tf.constant(z), head, training=True)
        layer.update_codebook()
    moved = layer.codebook.numpy()
    assert float(layer.dead_code_restarts.result()) == 3.0
    for k in (1, 2, 3):  # each dead codeword now sits on a code of the batch, distinct ones
        assert np.min(np.abs(z - moved[:, k]).max(1)) < 1e-6
    assert len({tuple(moved[:, k]) for k in (1, 2, 3)}) == 3
    np.testing.assert_array_equal(moved[:, 0], codebook[:, 0])  # the live one stays (no gradient step here)
    probs = layer.assignment_probabilities(z, head).numpy().mean(0)
    after = np.exp(-np.sum(probs[probs > 0] * np.log(probs[probs > 0])))
    assert before < 1.01 and after > 2.0


def test_dead_codewords_beyond_the_batch_wait_for_the_next_step():
    layer = VectorQuantizer(6, dead_code_steps=1, seed=0)
    z = _codes(n=2)
    layer(tf.constant(z))
    codebook = layer.codebook.numpy()
    codebook[:, 1:] = 50.0
    layer.codebook.assign(codebook)
    layer(tf.constant(z), training=True)
    layer.update_codebook()
    assert float(layer.dead_code_restarts.result()) == 2.0  # a batch of 2 restarts 2 of the 5 dead codewords


def test_kmeans_init_uses_kmeans_centres_deterministically():
    from sklearn.cluster import KMeans

    centres = 10 * np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]], np.float32)
    codes = np.concatenate([0.5 * _codes(i, 40) + c for i, c in enumerate(centres)])
    layers = []
    for _ in range(2):
        layer = VectorQuantizer(K, kmeans_init=True, seed=3)
        layer(tf.constant(codes[:B]))
        assert layer.needs_codebook_init()
        layer.initialize_codebook(codes)
        assert not layer.needs_codebook_init()
        layers.append(layer.codebook.numpy())
    np.testing.assert_array_equal(layers[0], layers[1])
    expected = KMeans(K, n_init=1, random_state=3).fit(codes.astype(np.float64)).cluster_centers_.T
    np.testing.assert_allclose(layers[0], expected, rtol=1e-5, atol=1e-5)
    # Four well-separated clusters: every codeword takes one of them.
    assert len(set(layer.nearest_codeword_indices(codes).numpy())) == K
    with pytest.raises(ValueError, match="at least K"):
        layer.initialize_codebook(codes[:2])
    # A grid of codes [B, H, W, d] is B * H * W codes, as the layer's call counts them: the same centres.
    grid = VectorQuantizer(K, kmeans_init=True, seed=3)
    grid.initialize_codebook(codes.reshape(10, 4, 4, 3))
    np.testing.assert_array_equal(grid.codebook.numpy(), layers[0])
    with pytest.raises(ValueError, match=r"at least K=4 codes \[\.\.\., d\], got shape \(1, 1, 3, 3\)"):
        grid.initialize_codebook(codes[:3].reshape(1, 1, 3, 3))


@pytest.mark.parametrize("name", ["vq", "soft_vq"])
def test_remedy_layers_serialise_and_reload_with_their_state(name, tmp_path):
    remedies = dict(kmeans_init=True, dead_code_steps=3, **({"ema_decay": 0.95} if name == "vq" else {}))
    layer = make_bottleneck(name, **applicable(name, {"num_codewords": K, **remedies}), seed=1)
    z = tf.constant(_codes())
    head = tf.zeros([B, K]) if name == "soft_vq" else None
    inputs = keras.Input((D,))
    heads = keras.Input((K,)) if head is not None else None
    model = keras.Model([inputs, heads] if heads is not None else inputs, layer(inputs, heads))
    layer.initialize_codebook(_codes(5, 20))
    for _ in range(4):
        layer(z, head, training=True)
        layer.update_codebook()
    path = str(tmp_path / "m.keras")
    model.save(path)
    clone = keras.models.load_model(path).get_layer(layer.name)
    assert clone.get_config() == layer.get_config()
    for a, b in zip(layer.weights, clone.weights):
        assert a.name == b.name
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert not clone.needs_codebook_init()  # a reloaded model is never initialised again
    np.testing.assert_array_equal(clone.seed_generator.state.numpy(), layer.seed_generator.state.numpy())


def test_remedy_settings_are_flags_refused_where_they_do_not_apply():
    from softvq_tf.training.errors import UsageError

    config = resolve_config("fashion_mnist", "vq", ema_decay=0.99, kmeans_init=True, dead_code_steps=50)
    assert config.name == "fashion_mnist_vq_d64_K128_restart50_ema0.99_kmeans_seed0"
    for bottleneck, flags, flag in [
        ("soft_vq", {"ema_decay": 0.99}, "--ema-decay"),
        ("ae", {"kmeans_init": True}, "--kmeans-init"),
        ("vae", {"dead_code_steps": 5}, "--dead-code-steps"),
    ]:
        with pytest.raises(UsageError, match=flag):
            resolve_config("fashion_mnist", bottleneck, **flags)
    for bad, flag in [({"ema_decay": 1.0}, "--ema-decay"), ({"dead_code_steps": 0}, "--dead-code-steps")]:
        with pytest.raises(UsageError, match=flag):
            resolve_config("fashion_mnist", "vq", **bad)


def test_runs_without_remedies_keep_their_identity():
    """Scores stored before the remedies existed still match the same settings today."""
    folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "results", "scores", "fashion_mnist")
    stored = json.load(open(os.path.join(folder, "fashion_mnist_vq_d64_K128_batch64_steps20000_seed0.json")))
    config = resolve_config("fashion_mnist", "vq", steps=20000, batch_size=64, kmeans_init=False)
    assert run_identity(config) == stored["identity"]
    assert (
        run_identity(resolve_config("fashion_mnist", "vq", steps=20000, batch_size=64, ema_decay=0.99))
        != stored["identity"]
    )


@pytest.mark.slow
def test_kmeans_init_in_training_happens_once_and_survives_resume(tmp_path):
    from softvq_tf.training.fit import train

    logs = []
    config = resolve_config(
        "digits",
        "vq",
        steps=40,
        epoch_steps=20,
        latent_dim=4,
        num_codewords=8,
        kmeans_init=True,
        dead_code_steps=5,
        ema_decay=0.9,
        out=str(tmp_path),
    )
    result = train(config, verbose=0, log=logs.append)
    assert any("k-means" in line for line in logs)
    assert not result.model.bottleneck.needs_codebook_init()
    assert "dead_code_restarts" in result.history and len(result.history["dead_code_restarts"]) == 2
