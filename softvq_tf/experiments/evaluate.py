"""Probe every trained run and print the paper-style table: ``python evaluate.py``."""

import os

from softvq_tf.experiments.command_line import experiment_parser
from softvq_tf.training.errors import UsageError, console_entry


def main(argv=None):
    p = experiment_parser(
        None, "Downstream probes (k-means ACC, NMI, linear probe) of trained runs.", data=False, schedule=False
    )
    p.add_argument("--runs", nargs="+", help="run directories (default: every finished run directly under --root)")
    p.add_argument(
        "--root", default="runs", help="folder searched for runs, and where the tables are written (default runs/)"
    )
    p.add_argument(
        "--tsne", action="store_true", help="also save a t-SNE scatter of the test latents per run (tsne.png)"
    )
    p.add_argument("--no-raw", action="store_true", help="skip the raw-data row")
    p.add_argument("--output", help="path stem of the table files (default ROOT/evaluation)")
    args = p.parse_args(argv)
    from softvq_tf.training import rundir

    if args.runs:
        missing = [r for r in args.runs if not os.path.isdir(r)]
        if missing:
            raise UsageError(f"run directory not found: {missing[0]}")
    elif not os.path.isdir(args.root):
        raise UsageError(f"no runs folder {args.root}; train with `python train.py` first or pass --runs PATH")
    runs = args.runs or rundir.find_runs(args.root)
    if not runs:
        raise UsageError(
            f"no finished runs directly under {args.root}; train one with `python train.py` or pass --runs PATH"
        )
    from softvq_tf.training.runtime import start_tensorflow

    start_tensorflow(args.verbose)
    from softvq_tf.experiments import scoring, table_files, tables
    from softvq_tf.experiments.plan import score_runs

    stem = args.output or os.path.join(args.root, "evaluation")
    # The score store sits beside the tables: a repeated evaluation rescores only runs whose weights changed.
    scores_dir = os.path.join(os.path.dirname(stem) or ".", "scores")
    rows = score_runs(
        runs,
        scores_dir,
        args.kmeans_inits,
        args.probe_epochs,
        args.tsne,
        raw=not args.no_raw,
        grid_extras=args.grid_extras,
    )
    rows = scoring.with_code_rows(rows)
    table = tables.summarize(rows)
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    header = tables.command_line("softvq-evaluate", argv) + "\n\n"
    table_files.write_tables(table, rows, stem, header)
    print()
    print(tables.to_markdown(table, tables.common_variant(rows)))
    print(f"written: {stem}.md, {stem}.csv, {stem}.json")
    return 0


run = console_entry(main)  # the softvq-* console script


if __name__ == "__main__":
    run()
