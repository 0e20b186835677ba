"""The quantizers keep their codebooks in any Keras model trained with fit, on every backend, or refuse in one line.

Functional, Sequential and subclassed ``keras.Model`` as a user builds them, against ``QuantizerModel``. The
optimizer's learning rate is 0 where a test isolates the codebook upkeep from the gradient.
"""

import keras
import numpy as np
import pytest

from softvq_tf import QuantizerModel, SoftVectorQuantizer, VectorQuantizer

D, K, B = 4, 16, 16


def _data(n=64, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 6)).astype("float32")
    return x, x


def _functional(quantizer, model_class=keras.Model, seed=0):
    inputs = keras.Input((6,))
    z_e = keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    outputs = keras.layers.Dense(6, kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(quantizer(z_e))
    return model_class(inputs, outputs)


class SubclassedAutoencoder(keras.Model):
    def __init__(self, quantizer):
        super().__init__()
        self.encoder = keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(0))
        self.quantizer = quantizer
        self.decoder = keras.layers.Dense(6, kernel_initializer=keras.initializers.GlorotUniform(1))

    def call(self, x, training=None):
        return self.decoder(self.quantizer(self.encoder(x), training=training))


def _sequential(quantizer):
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(0)),
            quantizer,
            keras.layers.Dense(6, kernel_initializer=keras.initializers.GlorotUniform(1)),
        ]
    )


BUILDERS = {"functional": _functional, "sequential": _sequential, "subclassed": SubclassedAutoencoder}


def _fit(model, epochs=2, lr=0.0):
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model.fit(*_data(), epochs=epochs, batch_size=B, shuffle=False, verbose=0).history


def _numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_the_ema_codebook_moves_in_any_keras_model_as_in_quantizer_model(kind):
    plain_layer = VectorQuantizer(K, ema_decay=0.9, seed=0)
    plain = BUILDERS[kind](plain_layer)
    plain(_data()[0][:1])  # build
    start = _numpy(plain_layer.codebook)
    _fit(plain)
    reference_layer = VectorQuantizer(K, ema_decay=0.9, seed=0)
    reference = _functional(reference_layer, QuantizerModel)
    reference(_data()[0][:1])
    np.testing.assert_array_equal(_numpy(reference_layer.codebook), start)  # the same start
    _fit(reference)
    moved = np.abs(_numpy(plain_layer.codebook) - start).max()
    assert moved > 1e-3, moved
    # With the optimizer still, the EMA codebook depends only on the codes: the same in both models.
    np.testing.assert_allclose(_numpy(plain_layer.codebook), _numpy(reference_layer.codebook), rtol=1e-4, atol=1e-5)
    assert _numpy(plain_layer.ema_steps) == 2 * 64 // B


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_the_metrics_of_a_plain_model_are_real(kind):
    history = _fit(BUILDERS[kind](VectorQuantizer(K, seed=0, name="vq")), epochs=1, lr=0.01)
    assert history["vq_bottleneck_loss"][-1] > 0
    assert history["vq_codewords_in_use"][-1] > 1 and history["vq_perplexity"][-1] > 1.0, history


def test_restarts_move_dead_codewords_onto_codes_in_a_plain_model_or_are_refused_in_one_line_on_jax():
    far = keras.initializers.Constant(50.0)  # every codeword far from every code: all but the nearest die
    layer = VectorQuantizer(K, dead_code_steps=1, codebook_initializer=far, seed=0)
    model = _functional(layer)
    if keras.backend.backend() == "jax":  # a trainable codebook's restarts cannot leave JAX's stateless call
        with pytest.raises(ValueError, match=r"(?s)cannot\s+restart\s+its\s+trainable\s+codebook.*QuantizerModel"):
            _fit(model, epochs=1)
        return
    _fit(model, epochs=1)
    codebook = _numpy(layer.codebook)
    assert (np.abs(codebook).max(axis=0) < 10).sum() >= K - 1  # restarted onto codes of the batch


def test_restarts_of_an_ema_codebook_work_in_a_plain_model_on_every_backend():
    far = keras.initializers.Constant(50.0)
    layer = VectorQuantizer(K, ema_decay=0.9, dead_code_steps=1, codebook_initializer=far, seed=0)
    _fit(_functional(layer), epochs=1)
    assert (np.abs(_numpy(layer.codebook)).max(axis=0) < 10).sum() >= K - 1


def test_soft_vq_restarts_and_trains_its_codebook_in_a_plain_model():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8)(inputs)
    layer = SoftVectorQuantizer(K, dead_code_steps=1, seed=0)
    outputs = keras.layers.Dense(6)(layer(keras.layers.Dense(D)(hidden), keras.layers.Dense(K)(hidden)))
    model = keras.Model(inputs, outputs)
    if keras.backend.backend() == "jax":
        with pytest.raises(ValueError, match="QuantizerModel"):
            _fit(model, epochs=1, lr=0.01)
        return
    history = _fit(model, epochs=1, lr=0.01)
    assert np.isfinite(history["loss"][-1])


def test_a_kmeans_codebook_is_refused_until_it_has_its_start_then_trains():
    layer = VectorQuantizer(K, kmeans_init=True, seed=0)
    model = _functional(layer)
    # The untrained encoder's codes (taken first: Keras's JAX fit leaves no weights behind a step that raised).
    codes = keras.ops.convert_to_numpy(model.layers[1](_data()[0]))
    with pytest.raises(ValueError, match=r"no k-means start yet: call layer.initialize_codebook\(codes\)"):
        _fit(model, epochs=1)
    if keras.backend.backend() == "jax":
        model = _functional(layer)
    layer.initialize_codebook(codes)
    assert not layer.needs_codebook_init()
    _fit(model, epochs=1)
