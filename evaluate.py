#!/usr/bin/env python
"""Probe every trained run and print the paper-style table: ``python evaluate.py``."""

import os
import sys

from softvq_tf.errors import ArgumentParser, run_cli


def main(argv=None):
    p = ArgumentParser(prog="evaluate.py", description="Downstream probes (k-means ACC, NMI, linear probe) of trained runs.")
    p.add_argument("--runs", nargs="+", help="run directories (default: every finished run directly under --root)")
    p.add_argument("--root", default="runs", help="folder searched for runs, and where the tables are written (default runs/)")
    p.add_argument("--kmeans-inits", type=int, default=100, help="k-means random initialisations (default 100)")
    p.add_argument("--probe-epochs", type=int, default=30, help="epochs of the linear softmax probe (default 30)")
    p.add_argument("--tsne", action="store_true", help="also save a t-SNE scatter of the test latents per run (tsne.png)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw-data row")
    p.add_argument("--output", help="path stem of the table files (default ROOT/evaluation)")
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    args = p.parse_args(argv)
    from softvq_tf.errors import UsageError

    if args.kmeans_inits < 1 or args.probe_epochs < 1:
        raise UsageError("--kmeans-inits and --probe-epochs must be >= 1")
    from softvq_tf import rundir

    if args.runs:
        missing = [r for r in args.runs if not os.path.isdir(r)]
        if missing:
            raise UsageError(f"run directory not found: {missing[0]}")
    elif not os.path.isdir(args.root):
        raise UsageError(f"no runs folder {args.root}; train with `python train.py` first or pass --runs PATH")
    runs = args.runs or rundir.find_runs(args.root)
    if not runs:
        raise UsageError(f"no finished runs directly under {args.root}; train one with `python train.py` or pass --runs PATH")
    from softvq_tf.runtime import start_tensorflow

    start_tensorflow(args.verbose)
    from softvq_tf import evaluation

    rows = evaluation.evaluate_runs(runs, args.kmeans_inits, args.probe_epochs, args.tsne, raw=not args.no_raw)
    table = evaluation.summarize(rows)
    stem = args.output or os.path.join(args.root, "evaluation")
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    header = f"Command: `python evaluate.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
    evaluation.write_tables(table, rows, stem, header)
    print()
    print(evaluation.to_markdown(table, evaluation.common_variant(rows)))
    print(f"written: {stem}.md, {stem}.csv, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
