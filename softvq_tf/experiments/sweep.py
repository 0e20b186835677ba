"""Compare settings on a validation split carved from train; ``--test`` scores the chosen ones on the test split.

    softvq-sweep --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist \\
        --variant original: --variant gaussian:likelihood=gaussian --variant noise0.1:noise_std=0.1

Choices are made on the validation split; ``--test`` is for the final table
of variants already chosen (it trains on all of train, probes the test split
and writes the full table: near-best ACC, training time, and each row's
difference to the soft VQ-VAE, or to the ``--reference`` variant, with its
interval).

Each ``--variant NAME:key=value,...`` is one run per seed (``bottleneck=ae``
switches the model; any other key is a ``RunConfig`` field). Runs go to
``RUNS_DIR/DATASET/`` under their usual names and, like their scores, are
reused when finished (``softvq_tf.experiment``); the probes score the
held-out part of train. Writes ``results/sweep_DATASET.md`` (and JSON) with
the validation scores and each run's final training losses, rewritten after
every run; ``--from-store`` writes them from the stored scores alone.
"""

import json
import os
import sys
import time

from softvq_tf.experiments.command_line import experiment_parser
from softvq_tf.layers import registry
from softvq_tf.training.errors import UsageError, console_entry


def parse_variant(text):
    """``"NAME:key=value,key=value"`` -> ``(NAME, {key: typed value})``."""
    from softvq_tf.training.config import parse_settings

    name, sep, assignments = text.partition(":")
    if not sep or not name or os.sep in name:
        raise UsageError(f"--variant must look like NAME:key=value,... (got {text!r})")
    return name, parse_settings(assignments, f"--variant {name}")


# A grid of codes' columns, on the held-out split (``tokens.token_scores``), where a sweep's rows have them.
GRID_COLUMNS = (
    ("held-out NMSE (decoder input)", "test_nmse", 4),
    ("held-out NMSE (hard tokens)", "hard_test_nmse", 4),
    ("tokens in use", "tokens_in_use", 0),
    ("effective codewords", "effective_codewords", 1),
)


def to_markdown(rows):
    grid = any(r.get("test_nmse") is not None for r in rows)
    columns = GRID_COLUMNS if grid else ()
    lines = [
        "| variant | seeds | clustering ACC (%) | near-best ACC (%) | NMI | classification (%) | final reconstruction "
        "(normalised MSE) | final perplexity | codewords in use | dead-codeword restarts |"
        + "".join(f" {label} |" for label, _, _ in columns),
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(columns),
    ]
    for r in rows:
        fmt = lambda m, d: f"{r[m]:.{d}f}" + (f" ± {r[m + '_std']:.{d}f}" if r["n"] > 1 else "")  # noqa: E731
        opt = lambda m, digits=1: "-" if r.get(m) is None else f"{r[m]:.{digits}f}"  # noqa: E731
        near_best = "-" if r.get("acc_near_best") is None else fmt("acc_near_best", 2)
        lines.append(
            f"| {r['variant']} | {r['n']} | {fmt('acc', 2)} | {near_best} | {fmt('nmi', 4)} | {fmt('cls', 2)} | "
            f"{r['reconstruction_nmse']:.4f} | {opt('perplexity')} | {opt('codewords_in_use')} | "
            f"{opt('dead_code_restarts', 0)} |" + "".join(f" {opt(metric, digits)} |" for _, metric, digits in columns)
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = experiment_parser(
        "softvq-sweep",
        __doc__.split("\n\n")[0],
        runs_dir="runs/sweep",
        from_store="train nothing: write the tables from the stored scores of the planned runs, whatever path made "
        "them",
    )
    p.add_argument(
        "--bottleneck",
        default=registry.PROPOSED,
        help=f"model of variants that do not set bottleneck= (default {registry.PROPOSED})",
    )
    p.add_argument("--variant", action="append", required=True, help="NAME:key=value,... (repeatable)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument(
        "--validation-split", type=float, default=1 / 6, help="fraction of train held out (default 1/6: 10k of 60k)"
    )
    p.add_argument(
        "--test",
        action="store_true",
        help="final scores of chosen variants: train on all of train, probe the test split",
    )
    p.add_argument(
        "--reference",
        metavar="NAME",
        help="with --test: the variant every other row is compared with (default: the paper's soft VQ-VAE); on a "
        "grid, each line minus its hard tokens",
    )
    p.add_argument("--scores-dir", help="per-run scores (default: scores/ beside the output)")
    p.add_argument("--output", help="default results/sweep_DATASET.md")
    args = p.parse_args(argv)
    if args.test:
        args.validation_split = 0.0
    elif not 0 < args.validation_split < 1:
        raise UsageError(
            f"--validation-split must be in (0, 1): a sweep never scores the test split (got {args.validation_split})"
        )
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    variants = [parse_variant(v) for v in args.variant]
    if len({name for name, _ in variants}) != len(variants):
        raise UsageError("--variant names must be unique")
    if args.reference is not None and (not args.test or args.reference not in dict(variants)):
        raise UsageError(f"--reference must name one of the --variant names, with --test (got {args.reference!r})")

    from softvq_tf.training.config import resolve_config

    plan = []  # (variant name, RunConfig)
    # Seed-major: an interrupted sweep has every variant at the first seeds.
    for seed in range(args.seeds):
        for name, flags in variants:
            flags = dict(flags)
            bottleneck = flags.pop("bottleneck", args.bottleneck)
            plan.append(
                (
                    name,
                    resolve_config(
                        args.dataset,
                        bottleneck,
                        data_dir=args.data_dir,
                        steps=args.steps,
                        batch_size=args.batch_size,
                        validation_split=args.validation_split,
                        seed=seed,
                        out=os.path.join(args.runs_dir, args.dataset),
                        **flags,
                    ),
                )
            )

    from softvq_tf.training.data import check_source
    from softvq_tf.training.runtime import start_tensorflow

    check_source(args.dataset, args.data_dir)
    start_tensorflow(args.verbose)
    from softvq_tf.experiments.plan import run_plan

    start = time.time()
    output = args.output or os.path.join("results", f"sweep_{args.dataset}.md")
    scores_dir = args.scores_dir or os.path.join(os.path.dirname(output), "scores")
    variant_of_run = {config.name: name for name, config in plan}
    named = lambda rows: [{**row, "variant_name": variant_of_run.get(row["run"], row["run"])} for row in rows]  # noqa: E731
    write = lambda rows: write_tables(named(rows), variants, args, argv, output)  # noqa: E731
    scores = run_plan(
        [c for _, c in plan],
        scores_dir,
        args.kmeans_inits,
        args.probe_epochs,
        raw=False,
        on_row=write,
        train_missing=not args.from_store,
        any_cpu=args.any_cpu,
        grid_extras=args.grid_extras,
    )
    if not scores:
        raise UsageError(f"no stored scores of this sweep in {scores_dir}; run it without --from-store")
    print(write(scores))
    print(f"written: {output} ({(time.time() - start) / 60:.1f} min)")
    return 0


def write_tables(scores, variants, args, argv, output):
    """Write the sweep's table from the runs scored so far (after every run, so a long sweep shows its
    progress); returns it as Markdown."""
    from softvq_tf.experiments import table_files, tables
    from softvq_tf.experiments.scoring import code_row_name, with_code_rows
    from softvq_tf.training import rundir

    scores = with_code_rows(scores)
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    split = (
        "Probes score the test split (variants chosen beforehand on a validation split)"
        if args.test
        else f"Probes score {args.validation_split:.4g} of train held out (never the test split)"
    )
    # The command that makes the runs: --from-store only rewrites the tables from their stored scores.
    made_by = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--from-store"]
    header = (
        f"# {args.dataset}: settings compared on the {'test' if args.test else 'validation'} split\n\n"
        f"{tables.command_line('softvq-sweep', made_by)}\n\n"
        f"{split}; {args.steps or 'preset'} steps, batch {args.batch_size or 'preset'}.\n\n"
    )
    if args.test:
        # The final table: every probe, training time, and each row minus the soft VQ-VAE with its interval.
        by_identity = tables.summarize(scores)
        reference = next(
            (r.get("identity_key", r.get("identity")) for r in scores if r["variant_name"] == args.reference), None
        )
        table_files.write_tables(by_identity, scores, os.path.splitext(output)[0], header, reference)
        return tables.to_markdown(by_identity, tables.common_variant(scores))
    summary = {entry["variant_name"]: entry for entry in tables.summarize(scores, group_by="variant_name")}
    rows = []
    for name, settings in [(n, s) for variant, s in variants for n in (variant, code_row_name(variant))]:
        if name not in summary:  # no probe of the bottleneck's own code, or no run of it yet
            continue
        entry = summary[name]
        row = {"variant": name, "settings": settings, "n": entry["n"]}
        for metric in ("acc", "acc_near_best", "nmi", "cls"):
            row[metric], row[metric + "_std"] = entry[metric], entry[metric + "_std"] or 0.0
        for key in ("reconstruction_nmse", "perplexity", "codewords_in_use", "dead_code_restarts"):
            row[key] = entry[key]
        for _, key, _ in GRID_COLUMNS:
            row[key] = entry.get(key)
        rows.append(row)
    rundir.write_atomic(output, header + to_markdown(rows))
    rundir.write_atomic(os.path.splitext(output)[0] + ".json", json.dumps(rows, indent=2) + "\n")
    return to_markdown(rows)


run = console_entry(main)  # the softvq-* console script


if __name__ == "__main__":
    run()
