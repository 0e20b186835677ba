"""What a grid-of-codes model does with discrete tokens: reconstructions from them, and how many it uses.

A VQ-VAE used as an image tokenizer hands its decoder (or a prior) a grid of
token indices. The hard quantizers' decoder input is that grid already; the
soft VQ-VAE decodes the posterior mean, which is not a token, so it is also
decoded here from its most probable codeword at each position.
"""

import math

import keras
import numpy as np

from softvq_tf.layers import registry
from softvq_tf.training.data import preprocess


def _psnr(mse):
    """Peak signal-to-noise ratio in dB of pixels spanning 1 (every preset scales them to a range of 1)."""
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def token_scores(model, config, images, batch_size=500):
    """Test reconstruction (normalised MSE, PSNR) from the decoder's usual input and from hard tokens, and token use.

    Returns ``test_nmse``, ``test_psnr``, ``token_perplexity`` and ``tokens_in_use``
    over every position of ``images``, ``bits_per_image`` (positions x log2 of
    the tokens in use), and, where the usual input is not a token (soft VQ),
    ``hard_test_nmse`` and ``hard_test_psnr`` from the most probable codewords, ``effective_codewords``
    (the mean of exp(entropy) of the posterior per position) and ``hard_token_distance`` (the mean squared
    distance between the posterior mean and the most probable codeword, per position): the layer's own
    measures over these images.
    A continuous bottleneck (the AE, the VAE family, information dropout) has no
    tokens: only its reconstruction is scored, the reference a tokenizer is measured against.
    """
    bottleneck = model.bottleneck
    usual, hard, counts, positions = 0.0, 0.0, None, None
    has_tokens = hasattr(bottleneck, "tokens")
    decodes_tokens = hasattr(bottleneck, "codewords") and registry.get(config.bottleneck).soft_tokens
    if decodes_tokens:  # the soft quantizer measures its softness in every call: over these images only
        softness = (bottleneck.effective_codewords, bottleneck.hard_token_distance)
        for metric in softness:
            metric.reset_state()
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start : start + batch_size], config.pixel_max, config.pixel_offset)
        x_np = keras.ops.convert_to_numpy(x)
        z_e, head = model.encode(x)  # once: the usual reconstruction and the tokens both read it (model(x)'s ops)
        usual_input = model.bottleneck(z_e, head, training=False)
        usual += float(np.sum((keras.ops.convert_to_numpy(model.decoder(usual_input, training=False)) - x_np) ** 2))
        if not has_tokens:
            continue
        tokens = keras.ops.convert_to_numpy(bottleneck.tokens(z_e, head))
        positions = int(np.prod(tokens.shape[1:]))
        found = np.bincount(tokens.reshape(-1), minlength=getattr(bottleneck, "num_codewords", 0))
        counts = found if counts is None else counts + found
        if decodes_tokens:
            x_hard = model.decoder(bottleneck.codewords(tokens), training=False)
            hard += float(np.sum((keras.ops.convert_to_numpy(x_hard) - x_np) ** 2))
    pixels = len(images) * math.prod(config.image_shape)
    scores = {"test_nmse": usual / pixels / model.data_variance, "test_psnr": _psnr(usual / pixels)}
    if not has_tokens:
        return scores
    p = counts / counts.sum()
    in_use = int((counts > 0).sum())
    scores.update(
        token_perplexity=float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))),
        tokens_in_use=in_use,
        bits_per_image=positions * math.log2(in_use) if in_use > 1 else 0.0,
    )
    if decodes_tokens:
        scores.update(hard_test_nmse=hard / pixels / model.data_variance, hard_test_psnr=_psnr(hard / pixels))
        effective, distance = (float(keras.ops.convert_to_numpy(metric.result())) for metric in softness)
        scores.update(effective_codewords=effective, hard_token_distance=distance)
    return scores
