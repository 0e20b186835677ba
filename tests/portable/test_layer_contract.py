"""The layer contract, in the manner of KerasHub's ``run_layer_test`` and ``run_precision_test``: every bottleneck and
each variant, on the loaded backend.

For each: the trainable and non-trainable weight counts; symbolic and eager calls; the config round trip; one
``fit`` step in a plain ``keras.Model`` and in ``QuantizerModel``, with the codebook moving exactly where the
upkeep is on (the learning rate is 0, so nothing else moves it); save and reload; under ``mixed_bfloat16``, a
float32 output (documented in ``Bottleneck``) and a finite loss close to float32's.
"""

import os

import keras
import numpy as np
import pytest

from softvq_tf import (
    FiniteScalarQuantizer,
    GaussianBottleneck,
    IdentityBottleneck,
    InformationDropout,
    QuantizerModel,
    SoftVectorQuantizer,
    StochasticVectorQuantizer,
    VectorQuantizer,
)

D, K, B = 4, 8, 32
FAR = keras.initializers.Constant(5.0)  # every codeword in one far place: all but one go unused, and restart

# name: (make the layer, trainable weights, non-trainable weights, whether training steps move the codebook)
VARIANTS = {
    "ae": (lambda: IdentityBottleneck(), 0, 0, False),
    "vae": (lambda: GaussianBottleneck(1.0, seed=0), 0, 0, False),
    "info_dropout": (lambda: InformationDropout(seed=0), 0, 0, False),
    "vq": (lambda: VectorQuantizer(K, seed=0), 1, 0, False),
    "vq_ema": (lambda: VectorQuantizer(K, ema_decay=0.9, seed=0), 0, 4, True),
    "vq_restarts": (lambda: VectorQuantizer(K, dead_code_steps=1, codebook_initializer=FAR, seed=0), 1, 1, True),
    "vq_kmeans": (lambda: VectorQuantizer(K, kmeans_init=True, seed=0), 1, 1, False),
    "vq_ema_kmeans_restarts": (
        lambda: VectorQuantizer(K, ema_decay=0.9, kmeans_init=True, dead_code_steps=1, seed=0),
        0,
        6,
        True,
    ),
    "rotation": (lambda: VectorQuantizer(K, gradient_estimator="rotation", seed=0), 1, 0, False),
    "soft_vq": (lambda: SoftVectorQuantizer(K, seed=0), 1, 0, False),
    "soft_vq_gaussian_noisy": (
        lambda: SoftVectorQuantizer(K, likelihood="gaussian", noise_std=0.1, seed=0),
        1,
        0,
        False,
    ),
    "soft_vq_restarts": (
        lambda: SoftVectorQuantizer(K, dead_code_steps=1, codebook_initializer=FAR, seed=0),
        1,
        1,
        True,
    ),
    "soft_vq_soft_to_hard": (
        lambda: SoftVectorQuantizer(
            K, decode="most_probable", hardening_steps=3, entropy_weight=0.1, usage_weight=0.1, seed=0
        ),
        1,
        1,
        False,
    ),
    "fsq": (lambda: FiniteScalarQuantizer((3, 3), seed=0), 4, 0, False),
    "sqvae": (lambda: StochasticVectorQuantizer(K, seed=0), 2, 1, False),
}


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _data():
    return np.random.default_rng(0).normal(size=(B, 6)).astype("float32")


def _model(variant, model_class=keras.Model):
    """``x [B, 6] -> Dense z_e [B, D] (and Dense head) -> bottleneck -> Dense [B, 6]``, seeded."""
    layer = VARIANTS[variant][0]()
    inputs = keras.Input((6,))
    features = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))
    to_code = keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotUniform(2))
    units = layer.head_units(D)
    to_head = keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(3)) if units else None

    def layer_inputs(x):
        """The bottleneck's inputs for ``x``: ``[z_e]`` or ``[z_e, head]``."""
        h = features(x)
        return [to_code(h)] + ([to_head(h)] if units else [])

    outputs = keras.layers.Dense(6, kernel_initializer=keras.initializers.GlorotUniform(4))(
        layer(*layer_inputs(inputs))
    )
    model = model_class(inputs, outputs)
    if getattr(layer, "kmeans_init", False):
        layer.initialize_codebook(_numpy(layer_inputs(_data())[0]))
    model.layer_inputs = layer_inputs
    return model, layer


def _codebook(layer):
    return _numpy(layer.codebook).copy() if hasattr(layer, "codebook") else None


def _refused_on_this_backend(variant):
    """A trainable codebook's restarts cannot leave a JAX stateless call: a plain model's step refuses them."""
    layer = VARIANTS[variant][0]()
    return (
        keras.backend.backend() == "jax" and bool(getattr(layer, "dead_code_steps", None)) and layer.ema_decay is None
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_calls_and_config(variant):
    make, trainable, non_trainable, _ = VARIANTS[variant]
    layer = make()
    units = layer.head_units(D)
    symbolic = layer(keras.Input((D,)), *([keras.Input((units,))] if units else []))
    assert tuple(symbolic.shape) == (None, D) and symbolic.dtype == "float32"
    assert (len(layer.trainable_weights), len(layer.non_trainable_weights)) == (trainable, non_trainable)
    rng = np.random.default_rng(1)
    eager = layer(
        rng.normal(size=(3, D)).astype("float32"), *([rng.normal(size=(3, units)).astype("float32")] if units else [])
    )
    assert tuple(eager.shape) == (3, D) and np.isfinite(_numpy(eager)).all()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize("model_class", [keras.Model, QuantizerModel], ids=["plain_model", "quantizer_model"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_one_fit_step_moves_the_codebook_exactly_where_the_upkeep_is_on(variant, model_class):
    model, layer = _model(variant, model_class)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    before = _codebook(layer)
    if model_class is keras.Model and _refused_on_this_backend(variant):
        with pytest.raises(ValueError, match="QuantizerModel"):
            model.fit(_data(), _data(), batch_size=B, epochs=1, verbose=0)
        return
    history = model.fit(_data(), _data(), batch_size=B, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    if before is not None:
        moved = np.abs(_codebook(layer) - before).max() > 0
        assert moved == VARIANTS[variant][3], f"{variant}: codebook moved {moved}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_reload(variant, tmp_path):
    model, layer = _model(variant, QuantizerModel)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(_data(), _data(), batch_size=B, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_numpy(reloaded(_data())), _numpy(model(_data())), rtol=1e-5, atol=1e-6)
    for saved, loaded in zip(model.weights, reloaded.weights):
        np.testing.assert_array_equal(_numpy(loaded), _numpy(saved))


@pytest.mark.parametrize("variant", VARIANTS)
def test_mixed_bfloat16_gives_a_float32_output_and_a_loss_close_to_float32(variant):
    def loss_and_output(policy):
        keras.config.set_dtype_policy(policy)
        try:
            model, layer = _model(variant)
            x = _data()
            out = model(x, training=False)
            loss = np.mean((_numpy(keras.ops.cast(out, "float32")) - x) ** 2) + sum(
                float(_numpy(loss)) for loss in model.losses
            )
            return loss, keras.backend.standardize_dtype(layer(*model.layer_inputs(x)).dtype)
        finally:
            keras.config.set_dtype_policy("float32")

    reference, _ = loss_and_output("float32")
    mixed, dtype = loss_and_output("mixed_bfloat16")
    assert dtype == "float32"
    assert np.isfinite(mixed) and abs(mixed - reference) <= 0.05 * abs(reference) + 1e-3, (mixed, reference)
