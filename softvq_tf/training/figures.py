"""The figures a run writes: reconstructions, and for quantizers how the codebook is used.

Each is a PNG written through ``rundir.save_figure`` (temporary name, then rename).
"""

import numpy as np
import tensorflow as tf

from softvq_tf.layers import registry
from softvq_tf.training import rundir
from softvq_tf.training.data import preprocess


def save_reconstructions(model, images, config, path, n=10):
    """Originals (top row) above their reconstructions (bottom row)."""
    plt = rundir.pyplot()
    x = preprocess(images[:n], config.pixel_max, config.pixel_offset)
    x_hat = tf.cast(model(x, training=False), tf.float32).numpy()
    lo, hi = config.pixel_offset, config.pixel_offset + 1.0
    fig, axes = plt.subplots(2, n, figsize=(n, 2.2))
    for row, batch in enumerate((x.numpy(), x_hat)):
        for i in range(n):
            img = np.clip((batch[i] - lo) / (hi - lo), 0, 1)
            axes[row, i].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
            axes[row, i].axis("off")
    fig.suptitle(f"{config.dataset} {config.bottleneck}: originals (top), reconstructions (bottom)", fontsize=8)
    rundir.save_figure(fig, path, dpi=80)


def codebook_usage(model, images, config, batch_size=1000):
    """On ``images``: the most probable codeword of each code ``[N]`` (every position of a grid), and for soft VQ the
    learned sigmas ``[N, K]``
    and each sample's posterior perplexity ``exp(H(p))`` ``[N]`` (1: a hard assignment, K: uniform)."""
    top, sigmas, perplexities = [], [], []
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start : start + batch_size], config.pixel_max, config.pixel_offset)
        z_e, head = model.encode(x)
        probs = model.bottleneck.assignment_probabilities(z_e, head).numpy()
        probs = probs.reshape(-1, probs.shape[-1])  # [B, K], or every position of a grid of codes
        top.append(probs.argmax(1))
        if registry.get(config.bottleneck).soft_tokens:
            sigmas.append(np.exp(head.numpy().astype(np.float64).reshape(probs.shape)))
            entropy = -(probs * np.log(np.maximum(probs, 1e-30))).sum(1)
            perplexities.append(np.exp(entropy))
    join = lambda parts: np.concatenate(parts) if parts else None  # noqa: E731
    return join(top), join(sigmas), join(perplexities)


def save_codebook_usage(model, images, config, history, path):
    """Codebook use per epoch (training), which codeword wins on the test split, and for soft VQ how soft it is."""
    plt = rundir.pyplot()
    top, sigmas, perplexities = codebook_usage(model, images, config)
    k = config.num_codewords
    soft = sigmas is not None
    fig, axes = plt.subplots(1, 4 if soft else 2, figsize=(16 if soft else 8, 3.4))
    epochs = np.arange(1, len(history.get("perplexity", [])) + 1)
    ax = axes[0]
    ax.plot(epochs, history.get("perplexity", []), label="perplexity of the average assignment")
    ax.plot(epochs, history.get("codewords_in_use", []), label="codewords most probable for a sample")
    ax.set(xlabel="epoch", ylabel=f"codewords (of K = {k})", title="codebook use while training")
    ax.legend(fontsize=7)
    counts = np.bincount(top, minlength=k)
    order = np.argsort(-counts)
    axes[1].bar(np.arange(k), counts[order] / len(top), width=1.0)
    axes[1].set(
        xlabel="codeword (sorted by use)",
        ylabel="share of test samples",
        title=f"most probable codeword, test split ({(counts > 0).sum()} of {k} used)",
    )
    if soft:
        axes[2].hist(np.log10(sigmas.ravel()), bins=60)
        axes[2].set(
            xlabel="log10 sigma_k (per sample and codeword)", ylabel="count", title="learned sigmas, test split"
        )
        axes[3].hist(perplexities, bins=60, range=(1, k))
        axes[3].set(
            xlabel="exp(entropy of p) per sample",
            ylabel="samples",
            title=f"softness of the assignment (median {np.median(perplexities):.1f})",
        )
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.suptitle(
        f"{config.dataset} {config.bottleneck} (K = {k}, d = {config.latent_dim}, seed {config.seed})", fontsize=9
    )
    fig.tight_layout()
    rundir.save_figure(fig, path, dpi=80)
