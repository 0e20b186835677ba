"""The paper's Figure 4 for any data set: t-SNE maps of ``z_e`` for the six bottlenecks, with numbers.

    softvq-figure4 --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist

Trains (or reuses, through the score store) the six bottlenecks with a
60-dimensional latent at the data set's preset, one seed each, as the paper
does on MNIST. Each panel is the 2-D t-SNE map of the test split's ``z_e``
(a seeded random subset of ``--points``), coloured by class and titled with
the model's test reconstruction error. The paper's claim is about
neighbourhoods, so each model also gets two numbers: the k-NN accuracy in
``z_e`` itself (train -> test, from the probes) and scikit-learn's
trustworthiness of the map (how many of a point's map neighbours are its
neighbours in ``z_e``; 1 is perfect). Writes the PNG and a Markdown table
beside it, with the command.
"""

import os

import numpy as np

from softvq_tf.experiments.command_line import experiment_parser
from softvq_tf.layers import registry
from softvq_tf.training.errors import UsageError, console_entry


def test_reconstruction_nmse(run_dir, config, images, batch_size=1000):
    """``mean((x_hat - x)^2) / var(x_train)`` of a finished run's saved autoencoder on ``images`` (stored pixels)."""
    import keras

    from softvq_tf.training.data import preprocess

    model = keras.models.load_model(os.path.join(run_dir, "autoencoder.keras"))
    squared, count = 0.0, 0
    for i in range(0, len(images), batch_size):
        x = preprocess(images[i : i + batch_size], config.pixel_max, config.pixel_offset).numpy()
        squared += float(np.sum(np.square(model(x, training=False).numpy() - x)))
        count += x.size
    return squared / count / model.data_variance


def tsne_map(latents, seed):
    """2-D t-SNE of ``latents`` (PCA start, fixed seed); its OpenMP threads wait passively (``start_tensorflow``)."""
    from sklearn.manifold import TSNE

    return TSNE(2, random_state=seed, init="pca").fit_transform(latents)


def draw(panels, labels, path, title):
    """Six panels (two rows of three): ``panels`` is ``[(title, xy [N, 2])]``; one colour per class."""
    from softvq_tf.training import rundir

    plt = rundir.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 9))
    for ax, (panel_title, xy) in zip(axes.flat, panels):
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=2)
        ax.set_title(panel_title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.legend(*scatter.legend_elements(), loc="lower center", ncol=10, fontsize=8, title="class")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    rundir.save_figure(fig, path, dpi=110)


def main(argv=None):
    p = experiment_parser("softvq-figure4", __doc__.split("\n\n")[0], runs_dir="runs/figure4")
    p.add_argument("--latent-dim", type=int, default=60, help="d (default 60, the paper's Figure 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--points", type=int, default=5000, help="test points on each map (default 5000)")
    p.add_argument("--neighbours", type=int, default=10, help="k of the trustworthiness (default 10)")
    p.add_argument("--scores-dir", default=os.path.join("results", "scores"))
    p.add_argument("--output", help="PNG path (default results/figures/figure4_DATASET.png)")
    args = p.parse_args(argv)
    if args.points < 2 * args.neighbours + 2:
        raise UsageError(f"--points must be at least 2 * --neighbours + 2, got {args.points}")
    output = args.output or os.path.join("results", "figures", f"figure4_{args.dataset}.png")
    if not output.endswith(".png"):
        raise UsageError(f"--output must be a .png path, got {output}")

    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.data import check_source

    configs = [
        resolve_config(
            args.dataset,
            bottleneck,
            data_dir=args.data_dir,
            latent_dim=args.latent_dim,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            out=os.path.join(args.runs_dir, args.dataset),
        )
        for bottleneck in registry.PAPER_NAMES
    ]
    check_source(args.dataset, args.data_dir)
    from softvq_tf.training.runtime import start_tensorflow

    start_tensorflow(args.verbose)
    from sklearn.manifold import trustworthiness

    from softvq_tf.experiments import scoring, tables
    from softvq_tf.experiments.plan import run_plan
    from softvq_tf.training import rundir
    from softvq_tf.training.data import load_splits

    rows = run_plan(configs, args.scores_dir, args.kmeans_inits, args.probe_epochs, raw=False, any_cpu=args.any_cpu)
    splits = load_splits(args.dataset, args.data_dir)
    subset = np.random.default_rng(args.seed).permutation(len(splits.x_eval))[: args.points]
    panels, lines, nmses = [], [], []
    for config, row in zip(configs, rows):
        z = np.asarray(scoring.latents(config.run_dir, splits.x_eval[subset]))
        xy = tsne_map(z, args.seed)
        trust = trustworthiness(z, xy, n_neighbors=args.neighbours)
        nmse = test_reconstruction_nmse(config.run_dir, config, splits.x_eval)
        nmses.append(nmse)
        name = tables.MODEL_NAMES[config.bottleneck]
        panels.append((f"{name}: test NMSE {nmse:.3f}\n10-NN {row['knn']:.1f}%, trustworthiness {trust:.3f}", xy))
        lines.append(
            f"| {name} | {nmse:.4f} | {row['knn']:.2f} | {trust:.4f} | {row['acc']:.2f} | {row['cls']:.2f} | "
            f"{config.name} |"
        )
        print(f"{config.name}: test NMSE {nmse:.4f}, 10-NN {row['knn']:.2f}%, trustworthiness {trust:.4f}")
    title = (
        f"{args.dataset}: t-SNE of test z_e (d = {args.latent_dim}, {len(subset)} points), "
        f"{configs[0].steps} steps at batch {configs[0].batch_size}, seed {args.seed}"
    )
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    draw(panels, splits.y_eval[subset], output, title)
    table = "\n".join(
        [
            f"# Figure 4 on {args.dataset}",
            "",
            tables.command_line("softvq-figure4", argv),
            "",
            f"![t-SNE maps]({os.path.basename(output)})",
            "",
            f"{title}. Test NMSE: normalised MSE of the reconstruction on the whole test split. 10-NN: accuracy "
            f"of a 10-nearest-neighbour vote in z_e (train -> test). Trustworthiness: scikit-learn's, k = "
            f"{args.neighbours}, of each map against z_e on the same points. Reconstruction errors range "
            f"{min(nmses):.3f}-{max(nmses):.3f} (max/min {max(nmses) / min(nmses):.2f}).",
            "",
            "| model | test NMSE | 10-NN (%) | trustworthiness | clustering ACC (%) | classification (%) | run |",
            "|---|---|---|---|---|---|---|",
            *lines,
        ]
    )
    rundir.write_atomic(os.path.splitext(output)[0] + ".md", table + "\n")
    print(f"written: {output} and {os.path.splitext(output)[0]}.md")
    return 0


run = console_entry(main)

if __name__ == "__main__":
    run()
