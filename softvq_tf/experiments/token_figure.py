"""Reconstructions of grid-of-codes runs from their hard tokens, one row per run, under the test images.

    python -m softvq_tf.experiments.token_figure --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --output results/figures/conv_grid_tokens.png \\
        --run "Soft VQ-VAE:runs/sweep/fashion_mnist/fashion_mnist_soft_vq_d64_K512_conv_grid_steps10000_seed0" ...

A tokenizer's decoder (or a prior's samples) works from a grid of token
indices, so every row decodes ``bottleneck.codewords(tokens)``: the nearest
codeword for hard VQ and SQ-VAE (their usual inference), the most probable
one for soft VQ, whose usual input, the posterior mean, gets a row of its own
above (none when its decoder reads the hard tokens, ``decode="most_probable"``).
FSQ's rounded code is its token grid already, so its row is the model's usual
output. Each row's title gives its normalised MSE on the images
shown;
pixels are drawn clipped to [0, 1]. A Markdown file beside the PNG gives the numbers and,
for soft VQ, how spread its posterior is (``posterior_spread``).

Runs outlive no machine here, so with ``--decodings DIR`` each run's decoded
images and numbers are kept in ``DIR/<run name>.npz`` (a few kB, committed);
a run whose folder is gone is drawn from that file. The figure's rows can so
come from runs finished in different sessions.
"""

import os

import numpy as np

from softvq_tf.training.config import DATASETS
from softvq_tf.training.errors import ArgumentParser, DataError, UsageError, console_entry


def token_reconstructions(model, x):
    """``[(decoder input, reconstruction)]`` of images ``x``: from hard tokens, and soft VQ's posterior mean first;
    a bottleneck without tokens (the AE) from its continuous code."""
    import keras

    bottleneck = model.bottleneck
    usual = keras.ops.convert_to_numpy(model(x, training=False))
    if not hasattr(bottleneck, "tokens"):  # the AE and its kin: a continuous code, the reference row
        return [("continuous code", usual)]
    if not hasattr(bottleneck, "codewords"):  # FSQ: the rounded code is the token grid
        return [("tokens", usual)]
    z_e, head = model.encode(x)
    hard = model.decoder(bottleneck.codewords(bottleneck.tokens(z_e, head)), training=False)
    out = [("hard tokens", keras.ops.convert_to_numpy(hard))]
    if getattr(bottleneck, "decode", None) == "posterior_mean":  # soft VQ decoding its posterior mean (the paper's)
        out.insert(0, ("posterior mean", usual))
    return out


def posterior_spread(model, x):
    """How far soft VQ's posterior mean is from a token, over every position of ``x``.

    Returns the mean most-probable posterior probability, the effective number
    of codewords ``exp(entropy)`` averaged over positions, and
    ``sum ||z_q - e_argmax||^2 / sum ||z_q||^2``, the hard token's distance from the
    code the decoder was trained on.
    """
    import keras

    bottleneck = model.bottleneck
    z_e, head = model.encode(x)
    p = keras.ops.convert_to_numpy(bottleneck.assignment_probabilities(z_e, head))  # [..., K]
    z_q = keras.ops.convert_to_numpy(bottleneck.codewords(np.arange(p.shape[-1])))  # [K, d]
    mean = p @ z_q
    hard = z_q[p.argmax(-1)]
    entropy = -np.sum(p * np.log(np.maximum(p, 1e-30)), axis=-1)
    return {
        "max_probability": float(p.max(-1).mean()),
        "effective_codewords": float(np.exp(entropy).mean()),
        "relative_distance": float(np.sum((mean - hard) ** 2) / np.sum(mean**2)),
    }


def parse_run(text):
    label, sep, path = text.partition(":")
    if not sep or not label or not path:
        raise UsageError(f"--run must look like LABEL:RUN_DIR (got {text!r})")
    return label, path.rstrip("/")


def decode_run(path, x_eval, images):
    """A finished run's decodings of the first ``images`` test images: its rows, their NMSE and soft VQ's spread."""
    import keras

    from softvq_tf import models  # noqa: F401 (registers the Autoencoder)
    from softvq_tf.training.config import RunConfig
    from softvq_tf.training.data import preprocess

    config = RunConfig.from_json(open(os.path.join(path, "config.json")).read())
    x = preprocess(x_eval[:images], config.pixel_max, config.pixel_offset).numpy()
    try:
        model = keras.saving.load_model(os.path.join(path, "autoencoder.keras"), compile=False)
    except Exception as error:  # Keras raises many kinds for one damaged file
        raise DataError(f"{path}/autoencoder.keras is damaged ({type(error).__name__}); retrain the run") from None
    decoded = token_reconstructions(model, x)
    out = {
        "x": x,
        "raw": np.asarray(x_eval[:images]),
        "decoder_inputs": np.array([name for name, _ in decoded]),
        "reconstructions": np.stack([x_hat for _, x_hat in decoded]),
        "nmse": np.array([np.mean((x_hat - x) ** 2) / model.data_variance for _, x_hat in decoded]),
        "path": np.array(path),
    }
    if type(model.bottleneck).__name__ == "SoftVectorQuantizer":
        spread = posterior_spread(model, preprocess(x_eval[:1000], config.pixel_max, config.pixel_offset))
        out["spread"] = np.array([spread[key] for key in SPREAD_KEYS])
    return out


SPREAD_KEYS = ("max_probability", "effective_codewords", "relative_distance")


def run_decodings(label, path, x_eval, images, decodings_dir):
    """Decode the run at ``path``, keeping the result in ``decodings_dir``; or read it there if the run is gone."""
    stored = os.path.join(decodings_dir, os.path.basename(path) + ".npz") if decodings_dir else None
    if os.path.exists(os.path.join(path, "autoencoder.keras")):
        out = decode_run(path, x_eval, images)
        if stored:
            from softvq_tf.training import rundir

            os.makedirs(decodings_dir, exist_ok=True)
            with rundir.atomic_path(stored) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **out)
        return out
    if stored and os.path.exists(stored):
        try:
            with np.load(stored) as f:
                out = dict(f)
        except Exception as error:  # a truncated or foreign file
            raise DataError(f"{stored} is damaged ({type(error).__name__}); delete it, decode the run again") from None
        if not np.array_equal(out["raw"], np.asarray(x_eval[:images])):
            raise UsageError(f"--run {label}: {stored} holds other test images than --dataset/--images ask for")
        return out
    where = f" and no {stored}" if stored else ""
    raise UsageError(f"--run {label}: no autoencoder.keras in {path}{where}; train the run first (softvq-sweep)")


def main(argv=None):
    p = ArgumentParser(prog="token_figure", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-dir")
    p.add_argument("--run", action="append", required=True, help="LABEL:RUN_DIR of a finished run (repeatable)")
    p.add_argument("--images", type=int, default=10, help="test images shown (the first of the test split)")
    p.add_argument("--decodings", help="folder keeping each run's decodings, to redraw without the run")
    p.add_argument("--output", required=True, help="the PNG to write")
    args = p.parse_args(argv)
    if args.images < 1:
        raise UsageError(f"--images must be >= 1, got {args.images}")
    runs = [parse_run(text) for text in args.run]
    from softvq_tf.training.data import check_source
    from softvq_tf.training.runtime import start_tensorflow

    check_source(args.dataset, args.data_dir)
    start_tensorflow(False)
    from softvq_tf.experiments import tables
    from softvq_tf.training import rundir
    from softvq_tf.training.data import load_splits

    data = load_splits(args.dataset, args.data_dir)
    rows, notes, spreads, x = [], [], [], None
    for label, path in runs:
        out = run_decodings(label, path, data.x_eval, args.images, args.decodings)
        x = out["x"] if x is None else x
        for decoder_input, x_hat, nmse in zip(out["decoder_inputs"], out["reconstructions"], out["nmse"]):
            rows.append((f"{label}, {decoder_input} (NMSE {nmse:.3f})", x_hat))
            notes.append(f"| {label} | {decoder_input} | {nmse:.4f} | {out['path']} |")
        if "spread" in out:
            spreads.append(f"| {label} | {out['spread'][0]:.3f} | {out['spread'][1]:.1f} | {out['spread'][2]:.2f} |")
    rows.insert(0, ("test images", x))

    plt = rundir.pyplot()
    fig, axes = plt.subplots(len(rows), args.images, figsize=(args.images * 1.0, len(rows) * 1.2), squeeze=False)
    for line, (title, images) in zip(axes, rows):
        for ax, image in zip(line, images):
            ax.imshow(np.clip(image.squeeze(), 0, 1), cmap="gray" if image.shape[-1] == 1 else None)
            ax.set_xticks([]), ax.set_yticks([])
        line[0].set_title(title, fontsize=8, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.25 / len(rows), bottom=0.01, wspace=0.04, hspace=0.3)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    rundir.save_figure(fig, args.output)
    table = [
        f"# {os.path.basename(args.output)}\n",
        tables.command_line("python -m softvq_tf.experiments.token_figure", argv) + "\n",
        f"![Reconstructions from hard tokens]({os.path.basename(args.output)})\n",
        f"Normalised MSE on the {args.images} test images shown:\n",
        "| run | decoder input | NMSE | run directory |",
        "|---|---|---|---|",
        *notes,
    ]
    if spreads:
        table += [
            "\nSoft VQ's posterior over the first 1,000 test images, every position: the most probable "
            "codeword's probability, the effective number of codewords exp(entropy), and the hard token's "
            "squared distance from the posterior mean relative to the mean's squared norm.\n",
            "| run | most probable codeword's probability (mean) | effective codewords | relative distance |",
            "|---|---|---|---|",
            *spreads,
        ]
    stem = os.path.splitext(args.output)[0]
    rundir.write_atomic(stem + ".md", "\n".join(table) + "\n")
    print(f"written: {args.output} and {stem}.md")
    return 0


run = console_entry(main)

if __name__ == "__main__":
    run()
