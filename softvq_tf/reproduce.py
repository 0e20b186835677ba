"""Reproduce the paper's table for one data set in one command.

    python -m softvq_tf.reproduce --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist

Trains the six bottlenecks with the data set's preset (``--seeds`` each; AE and
soft VQ-VAE get at least ``--min-seeds-key`` seeds), probes every run plus the
raw data, and writes ``results/DATASET.{md,csv,json,png}``. Finished runs and
their probe scores are reused, so an interrupted reproduction continues.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from softvq_tf.errors import run_cli  # noqa: E402


def plan_runs(dataset, seeds, key_seeds, flags, soft_vq_flags=None):
    """The RunConfigs to train: every bottleneck x seed (``soft_vq_flags`` apply to soft_vq only)."""
    from softvq_tf.bottlenecks import BOTTLENECKS
    from softvq_tf.config import resolve_config

    configs = []  # seed-major: one seed of every model finishes before the extra seeds start
    for seed in range(max(seeds, key_seeds)):
        for bottleneck in BOTTLENECKS:
            if seed < (max(seeds, key_seeds) if bottleneck in ("ae", "soft_vq") else seeds):
                extra = (soft_vq_flags or {}) if bottleneck == "soft_vq" else {}
                configs.append(resolve_config(dataset, bottleneck, seed=seed, **flags, **extra))
    return configs


def save_metrics_figure(table, path, title):
    """Bar chart of the three metrics per model, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softvq_tf.evaluation import display_name

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    names = [display_name(e) for e in table]
    for ax, (metric, label) in zip(axes, (("acc", "clustering ACC (%)"), ("nmi", "NMI"), ("cls", "classification (%)"))):
        ax.bar(range(len(table)), [e[metric] for e in table], yerr=[e[metric + "_std"] or 0 for e in table], capsize=3,
               color=["#999999" if e["model"] == "raw" else "#d62728" if e["model"] == "soft_vq" else "#1f77b4" for e in table])
        ax.set_xticks(range(len(table)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    from softvq_tf import rundir

    rundir.save_figure(fig, path, dpi=100)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m softvq_tf.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--seeds", type=int, default=3, help="seeds per bottleneck (default 3)")
    p.add_argument("--min-seeds-key", type=int, default=3, help="at least this many seeds for ae and soft_vq (default 3)")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--noise-std", type=float, help="soft VQ-VAE: std of the noise on the code (default: the preset's, 0)")
    p.add_argument("--validation-split", type=float, help="probe on a holdout of train instead of the test split (for tuning)")
    p.add_argument("--kmeans-inits", type=int, default=100)
    p.add_argument("--probe-epochs", type=int, default=30)
    p.add_argument("--runs-dir", default="runs/reproduce", help="where the runs go (default runs/reproduce)")
    p.add_argument("--results-dir", default="results", help="where the tables go (default results/)")
    args = p.parse_args(argv)
    from softvq_tf.errors import UsageError

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    flags = {"data_dir": args.data_dir, "steps": args.steps, "batch_size": args.batch_size,
             "validation_split": args.validation_split, "out": os.path.join(args.runs_dir, args.dataset)}
    configs = plan_runs(args.dataset, args.seeds, args.min_seeds_key, flags, {"noise_std": args.noise_std})

    import keras

    from softvq_tf import evaluation, rundir
    from softvq_tf.training import train

    start, trained = time.time(), 0
    todo = [c for c in configs if not rundir.is_complete(c.run_dir)]
    print(f"reproduce {args.dataset}: {len(configs)} runs, {len(configs) - len(todo)} already finished", flush=True)
    for i, config in enumerate(todo):
        elapsed = time.time() - start
        eta = f", about {elapsed / trained * (len(todo) - i) / 60:.0f} min of training left" if trained else ""
        print(f"[{i + 1}/{len(todo)}] {config.name}: {config.steps} steps{eta}", flush=True)
        keras.backend.clear_session()
        train(config, verbose=2)
        trained += 1
    rows = evaluation.evaluate_runs([c.run_dir for c in configs], args.kmeans_inits, args.probe_epochs)
    table = evaluation.summarize(rows)
    os.makedirs(args.results_dir, exist_ok=True)
    stem = os.path.join(args.results_dir, args.dataset)
    command = "python -m softvq_tf.reproduce " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"# {args.dataset}: downstream probes of the six bottlenecks\n\nCommand: `{command}`\n\n"
              f"Mean ± std over seeds; seconds = probe time per run. Machine: {os.cpu_count()} CPU cores.\n\n")
    evaluation.write_tables(table, rows, stem, header)
    save_metrics_figure(table, stem + ".png", f"{args.dataset}: mean ± std over seeds")
    print(evaluation.to_markdown(table))
    print(f"written: {stem}.md, .csv, .json, .png ({(time.time() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
