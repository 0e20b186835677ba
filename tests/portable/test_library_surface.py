"""One library surface, checked early: tokens and their inverse, metrics under each layer's name, and the refusals
that come when the model is built (a missing head, a fractional K, another code width)."""

import keras
import numpy as np
import pytest

from softvq_tf import FiniteScalarQuantizer, SoftVectorQuantizer, StochasticVectorQuantizer, VectorQuantizer


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


Z = np.random.default_rng(0).normal(size=(2, 5, 5, 6)).astype("float32")  # a grid of codes, d = 6


@pytest.mark.parametrize(
    "make",
    [
        lambda: VectorQuantizer(16, seed=0),
        lambda: VectorQuantizer(16, gradient_estimator="rotation", seed=0),
        lambda: FiniteScalarQuantizer((4, 3, 5), seed=0),
        lambda: StochasticVectorQuantizer(16, seed=0),
    ],
    ids=["vq", "rotation", "fsq", "sqvae"],
)
def test_codewords_of_the_tokens_is_the_inference_output(make):
    quantizer = make()
    decoder_input = _numpy(quantizer(Z, training=False))
    tokens = quantizer.tokens(Z)
    assert tuple(tokens.shape) == Z.shape[:-1]
    assert 0 <= _numpy(tokens).min() and _numpy(tokens).max() < quantizer.num_codewords
    np.testing.assert_allclose(_numpy(quantizer.codewords(tokens)), decoder_input, atol=1e-6)


def test_fsq_tokens_are_a_bijection_onto_the_implicit_codebook():
    fsq = FiniteScalarQuantizer((4, 3, 5), seed=0)
    fsq(Z)
    every = np.arange(fsq.num_codewords)
    outputs = _numpy(fsq.codewords(every))  # [60, d]: one distinct decoder input per token
    assert len(np.unique(outputs.round(6), axis=0)) == fsq.num_codewords


def test_soft_vq_tokens_are_the_most_probable_codewords():
    quantizer = SoftVectorQuantizer(16, seed=0)
    log_sigma = np.random.default_rng(1).normal(size=(*Z.shape[:-1], 16)).astype("float32")
    quantizer(Z, log_sigma)
    probs = _numpy(quantizer.assignment_probabilities(Z, log_sigma))
    np.testing.assert_array_equal(_numpy(quantizer.tokens(Z, log_sigma)), probs.argmax(-1))


def test_two_quantizers_in_one_model_log_their_metrics_under_their_own_names():
    inputs = keras.Input((6,))
    bottom = VectorQuantizer(8, seed=0, name="vq_bottom")(keras.layers.Dense(4)(inputs))
    top = VectorQuantizer(4, seed=1, name="vq_top")(keras.layers.Dense(3)(bottom))
    model = keras.Model(inputs, keras.layers.Dense(6)(top))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    history = model.fit(x, x, batch_size=64, epochs=1, verbose=0).history
    for name, k in (("vq_bottom", 8), ("vq_top", 4)):
        assert history[f"{name}_bottleneck_loss"][-1] > 0
        assert 1.0 <= history[f"{name}_perplexity"][-1] <= k and 1 <= history[f"{name}_codewords_in_use"][-1] <= k
    assert not {"perplexity", "codewords_in_use", "bottleneck_loss"} & set(history)


def test_the_layer_named_bottleneck_logs_plain_names_as_the_stored_runs_do():
    assert VectorQuantizer(8, name="bottleneck").perplexity.name == "perplexity"
    assert VectorQuantizer(8, name="vq").perplexity.name == "vq_perplexity"


def test_a_missing_head_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match=r"needs a head \[\.\.\., 16\] beside z_e shape \(None, 8\)"):
        SoftVectorQuantizer(16)(keras.Input((8,)))
    with pytest.raises(ValueError, match="needs a head"):
        keras.Sequential([keras.Input((8,)), SoftVectorQuantizer(16)])


@pytest.mark.parametrize("bad", [2.5, True, "8", 0])
def test_num_codewords_must_be_a_whole_number(bad):
    with pytest.raises(ValueError, match="num_codewords must be a whole number >= 1"):
        VectorQuantizer(bad)


def test_a_code_width_other_than_the_built_one_is_refused_naming_both():
    quantizer = VectorQuantizer(8)
    quantizer(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"built for codes \[\.\.\., 8\], got z_e shape \(2, 6\)"):
        quantizer(np.zeros((2, 6), "float32"))
