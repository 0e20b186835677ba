"""Reproduce the paper's table for one data set in one command.

    softvq-reproduce --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist

Trains the six bottlenecks with the data set's preset (``--seeds`` each; AE and
soft VQ-VAE get at least ``--min-seeds-key`` seeds, any bottleneck more with
``--more-seeds``), probes every run plus the
raw data, and writes ``results/DATASET.{md,csv,json,png}``, rewritten after
each run. Each run's scores also go into ``results/scores/DATASET/`` (see
``softvq_tf.experiments.plan``), so an interrupted reproduction continues, on this
machine or another, without retraining what was scored.
"""

import os

from softvq_tf.experiments.command_line import experiment_parser
from softvq_tf.layers import registry
from softvq_tf.training.errors import console_entry


def seed_counts(seeds, *at_least):
    """Seeds per bottleneck: ``seeds`` each, raised to ``n`` wherever one of the ``at_least`` maps
    ({bottleneck: n}) asks for more: the key rows (AE, soft VQ-VAE) or the overlapping top rows."""
    counts = dict.fromkeys(registry.PAPER_NAMES, seeds)
    for requirement in at_least:
        for bottleneck, n in requirement.items():
            counts[bottleneck] = max(counts[bottleneck], n)
    return counts


def plan_runs(dataset, counts, settings):
    """The RunConfigs to train, ``counts[b]`` seeds of each bottleneck; each setting goes to the
    bottlenecks it applies to."""
    from softvq_tf.training.config import applicable, resolve_config

    configs = []  # seed-major: one seed of every model finishes before the extra seeds start
    for seed in range(max(counts.values())):
        for bottleneck in registry.PAPER_NAMES:
            if seed < counts[bottleneck]:
                configs.append(resolve_config(dataset, bottleneck, seed=seed, **applicable(bottleneck, settings)))
    return configs


def parse_more_seeds(text):
    """``"soft_vq=10,beta_vae=10"`` -> ``{"soft_vq": 10, "beta_vae": 10}``, or a UsageError naming the fix."""
    from softvq_tf.training.errors import UsageError

    out = {}
    for item in filter(None, text.split(",")):
        name, _, count = item.partition("=")
        if name not in registry.PAPER_NAMES:
            raise UsageError(
                f"--more-seeds: unknown bottleneck {name!r}; choose from {', '.join(registry.PAPER_NAMES)}"
            )
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--more-seeds: {item!r} needs a seed count >= 1, as in {name}=10")
        out[name] = int(count)
    return out


def save_metrics_figure(table, path, title):
    """Bar chart of the three metrics per model, error bars = std over seeds."""
    from softvq_tf.experiments.tables import MODEL_NAMES, RAW
    from softvq_tf.training import rundir

    plt = rundir.pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    names = [MODEL_NAMES[e["model"]] for e in table]
    for ax, (metric, label) in zip(
        axes, (("acc", "clustering ACC (%)"), ("nmi", "NMI"), ("cls", "classification (%)"))
    ):
        ax.bar(
            range(len(table)),
            [e[metric] for e in table],
            yerr=[e[metric + "_std"] or 0 for e in table],
            capsize=3,
            color=[
                "#999999" if e["model"] == RAW else "#d62728" if e["model"] == registry.PROPOSED else "#1f77b4"
                for e in table
            ],
        )
        ax.set_xticks(range(len(table)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    rundir.save_figure(fig, path, dpi=100)


def main(argv=None):
    p = experiment_parser(
        "softvq-reproduce",
        __doc__.split("\n\n")[0],
        runs_dir="runs/reproduce",
        from_store="train nothing: write the tables from the scores stored so far",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per bottleneck (default 3)")
    p.add_argument(
        "--min-seeds-key", type=int, default=3, help="at least this many seeds for ae and soft_vq (default 3)"
    )
    p.add_argument(
        "--more-seeds",
        default="",
        metavar="MODEL=N[,MODEL=N]",
        help="at least N seeds for these bottlenecks, e.g. soft_vq=10,beta_vae=10 (the top rows of a table "
        "whose intervals overlap)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="any other setting (lr, noise_std, likelihood, precision, vq_weight, ...); each applies to the "
        "bottlenecks it means something for (noise_std to soft_vq only)",
    )
    p.add_argument(
        "--validation-split", type=float, help="probe on a holdout of train instead of the test split (for tuning)"
    )
    p.add_argument("--results-dir", default="results", help="where the tables and per-run scores go (default results/)")
    p.add_argument("--output", help="path stem of the table files (default RESULTS_DIR/DATASET)")
    args = p.parse_args(argv)
    from softvq_tf.training.config import parse_settings
    from softvq_tf.training.errors import UsageError

    if args.seeds < 1 or args.min_seeds_key < 0:
        raise UsageError(f"--seeds must be >= 1 and --min-seeds-key >= 0, got {args.seeds}, {args.min_seeds_key}")
    settings = {}
    for text in args.set:
        settings.update(parse_settings(text, "--set"))
    if "bottleneck" in settings:
        raise UsageError("--set bottleneck=... is not allowed: reproduce trains all six")
    settings.update(
        {
            k: v
            for k, v in {
                "data_dir": args.data_dir,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "validation_split": args.validation_split,
            }.items()
            if v is not None
        }
    )
    settings["out"] = os.path.join(args.runs_dir, args.dataset)
    key_rows = dict.fromkeys((registry.BASELINE, registry.PROPOSED), args.min_seeds_key)
    counts = seed_counts(args.seeds, key_rows, parse_more_seeds(args.more_seeds))
    configs = plan_runs(args.dataset, counts, settings)
    from softvq_tf.training.data import check_source
    from softvq_tf.training.runtime import start_tensorflow

    check_source(args.dataset, args.data_dir)
    start_tensorflow(args.verbose)
    from softvq_tf.experiments import table_files, tables
    from softvq_tf.experiments.plan import run_plan

    stem = args.output or os.path.join(args.results_dir, args.dataset)
    header = (
        f"# {args.dataset}: downstream probes of the six bottlenecks\n\n"
        f"{tables.command_line('softvq-reproduce', argv)}\n\n"
        f"Mean ± std over seeds (sample std); codebook perplexity and codewords in use are the last training "
        f"epoch's; training time is wall time, not a benchmark (other work may have shared the machine). "
        f"Machine: {os.cpu_count()} CPU cores.\n\n"
    )

    def write(rows):
        os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
        table = tables.summarize(rows)
        table_files.write_tables(table, rows, stem, header)
        save_metrics_figure(table, stem + ".png", f"{args.dataset}: mean ± std over seeds")
        return table

    rows = run_plan(
        configs,
        os.path.join(args.results_dir, "scores"),
        args.kmeans_inits,
        args.probe_epochs,
        on_row=write,
        train_missing=not args.from_store,
        any_cpu=args.any_cpu,
        grid_extras=args.grid_extras,
    )
    table = write(rows)
    print(tables.to_markdown(table, tables.common_variant(rows)))
    print(f"written: {stem}.md, .csv, .json, .png")
    return 0


run = console_entry(main)  # the softvq-* console script


if __name__ == "__main__":
    run()
