"""Soft VQ that tokenizes (issue #45): decode modes, the soft-to-hard annealing, the peakedness penalty and the two
measures of softness, on the loaded backend."""

import keras
import numpy as np
import pytest

from softvq_tf import SoftVectorQuantizer

K = 16
RNG = np.random.default_rng(0)
Z = RNG.normal(size=(4, 3, 3, 6)).astype("float32")  # a 3 x 3 grid of codes, d = 6
LOG_SIGMA = RNG.normal(size=(4, 3, 3, K)).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_at_full_hardness_the_posterior_is_one_hot_and_the_output_is_the_most_probable_codeword():
    quantizer = SoftVectorQuantizer(K, hardening_steps=2, seed=0)
    quantizer(Z, LOG_SIGMA)
    assert float(_numpy(quantizer.temperature())) == 1.0
    soft = _numpy(quantizer.assignment_probabilities(Z, LOG_SIGMA))
    assert soft.max() < 1.0  # the paper's posterior, before any step
    quantizer(Z, LOG_SIGMA, training=True)
    assert float(_numpy(quantizer.temperature())) == pytest.approx(0.5)
    quantizer(Z, LOG_SIGMA, training=True)
    assert float(_numpy(quantizer.temperature())) == 0.0
    probs = _numpy(quantizer.assignment_probabilities(Z, LOG_SIGMA))
    assert np.all((probs == 0) | (probs == 1)) and np.all(probs.sum(-1) == 1)
    np.testing.assert_array_equal(probs.argmax(-1), soft.argmax(-1))  # the same tokens, now hard
    hard = _numpy(quantizer.codewords(quantizer.tokens(Z, LOG_SIGMA)))
    for training in (False, True):
        np.testing.assert_allclose(_numpy(quantizer(Z, LOG_SIGMA, training=training)), hard, atol=1e-6)


@pytest.mark.parametrize("decode", ["posterior_mean", "most_probable", "sample"])
def test_decode_modes_shapes_and_values(decode):
    quantizer = SoftVectorQuantizer(K, decode=decode, seed=0)
    out = _numpy(quantizer(Z, LOG_SIGMA, training=True))
    assert out.shape == Z.shape and np.isfinite(out).all()
    codebook = _numpy(quantizer.codebook).T  # [K, d]
    nearest_codeword = np.abs(out.reshape(-1, 1, 6) - codebook[None]).max(-1).min(-1)  # [N]
    mean = _numpy(quantizer.assignment_probabilities(Z, LOG_SIGMA)) @ codebook
    if decode == "posterior_mean":
        np.testing.assert_allclose(out, mean, atol=1e-5)
    else:  # a codeword at every position
        assert nearest_codeword.max() < 1e-5
    if decode == "most_probable":
        np.testing.assert_allclose(out, _numpy(quantizer.codewords(quantizer.tokens(Z, LOG_SIGMA))), atol=1e-6)


def test_the_hard_decoders_gradient_reaches_the_code_and_the_variance_head():
    from tests.portable.backend_grads import call_with_gradients

    quantizer = SoftVectorQuantizer(K, decode="most_probable", seed=0)
    weights = np.random.default_rng(1).normal(size=Z.shape)
    output, _, (grad_z, grad_head), _ = call_with_gradients(quantizer, [Z, LOG_SIGMA], weights)
    assert output.shape == Z.shape
    assert np.abs(grad_z).max() > 0 and np.abs(grad_head).max() > 0  # straight through to z_e; the VQ loss to s


def test_the_entropy_penalty_adds_its_weight_times_the_mean_entropy():
    plain, peaked = SoftVectorQuantizer(K, seed=0), SoftVectorQuantizer(K, entropy_weight=0.3, seed=0)
    plain(Z, LOG_SIGMA), peaked(Z, LOG_SIGMA)
    probs = _numpy(plain.assignment_probabilities(Z, LOG_SIGMA))
    entropy = -(probs * np.log(probs + 1e-30)).sum(-1).mean()
    difference = float(_numpy(peaked.losses[0])) - float(_numpy(plain.losses[0]))
    assert difference == pytest.approx(0.3 * entropy, rel=1e-4)


def test_the_usage_reward_subtracts_its_weight_times_the_entropy_of_the_mean_posterior():
    plain = SoftVectorQuantizer(K, seed=0)
    both = SoftVectorQuantizer(K, entropy_weight=0.3, usage_weight=0.2, seed=0)
    plain(Z, LOG_SIGMA), both(Z, LOG_SIGMA)
    probs = _numpy(plain.assignment_probabilities(Z, LOG_SIGMA)).reshape(-1, K)
    entropy = -(probs * np.log(probs + 1e-30)).sum(-1).mean()
    usage = probs.mean(0)
    usage_entropy = -(usage * np.log(usage + 1e-30)).sum()
    difference = float(_numpy(both.losses[0])) - float(_numpy(plain.losses[0]))
    assert usage_entropy > 0.5  # the case is not degenerate
    assert difference == pytest.approx(0.3 * entropy - 0.2 * usage_entropy, rel=1e-4)


def test_the_measures_of_softness():
    soft = SoftVectorQuantizer(K, seed=0, name="soft")
    soft(Z, LOG_SIGMA)
    assert 1.0 < float(_numpy(soft.effective_codewords.result())) <= K
    assert float(_numpy(soft.hard_token_distance.result())) > 0
    hard = SoftVectorQuantizer(K, hardening_steps=1, seed=0)
    hard(Z, LOG_SIGMA, training=True)
    hard.effective_codewords.reset_state(), hard.hard_token_distance.reset_state()
    hard(Z, LOG_SIGMA)
    assert float(_numpy(hard.effective_codewords.result())) == pytest.approx(1.0)
    assert float(_numpy(hard.hard_token_distance.result())) == pytest.approx(0.0, abs=1e-10)


def test_the_defaults_are_the_papers_soft_quantizer():
    quantizer = SoftVectorQuantizer(K, seed=0)
    quantizer(Z, LOG_SIGMA)
    assert [w.name for w in quantizer.weights] == ["codebook"]  # no annealing state unless asked
    probs = _numpy(quantizer.assignment_probabilities(Z, LOG_SIGMA))
    expected = probs @ _numpy(quantizer.codebook).T
    np.testing.assert_allclose(_numpy(quantizer(Z, LOG_SIGMA)), expected, atol=1e-5)


@pytest.mark.parametrize(
    "bad", [{"decode": "hard"}, {"hardening_steps": 0}, {"entropy_weight": -1.0}, {"usage_weight": -0.1}]
)
def test_bad_settings_are_refused_in_one_line(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SoftVectorQuantizer(K, **bad)
