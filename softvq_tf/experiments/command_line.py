"""The flags the experiment commands share (reproduce, sweep, figure4, evaluate), built in one place."""

import argparse
import sys

from softvq_tf.training.errors import ArgumentParser
from softvq_tf.training.presets import DATASETS

ANY_CPU_HELP = (
    "reuse scores stored from another CPU's instruction set (same code, path and settings: the weights differ "
    "only in rounding, and each run's table line names its CPU)"
)


def positive_int(text):
    """An argparse type: a whole number >= 1 (a bad one is the parser's one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def experiment_parser(prog, description, *, data=True, schedule=True, runs_dir=None, from_store=None):
    """A parser with the flags the experiment commands share; each command adds its own after.

    Args:
        prog: the command's name, in its errors and ``--help``.
        description: its one-line description.
        data: add ``--dataset`` (required) and ``--data-dir``.
        schedule: add ``--steps`` and ``--batch-size`` (default: the preset's).
        runs_dir: add ``--runs-dir`` with this default, and ``--any-cpu`` (commands that train and store scores).
        from_store: add ``--from-store`` with this help (commands that can write their tables from stored scores).
    """
    p = ArgumentParser(prog=prog, description=description)
    if data:
        p.add_argument("--dataset", required=True, choices=DATASETS)
        p.add_argument("--data-dir", help="folder with the data set's standard files instead of TensorFlow Datasets")
    if schedule:
        p.add_argument("--steps", type=positive_int, help="training steps (default: the preset's)")
        p.add_argument("--batch-size", type=positive_int, help="global batch size (default: the preset's)")
    if runs_dir:
        p.add_argument("--runs-dir", default=runs_dir, help=f"where the runs go (default {runs_dir})")
        p.add_argument("--any-cpu", action="store_true", help=ANY_CPU_HELP)
    if from_store:
        p.add_argument("--from-store", action="store_true", help=from_store)
    p.add_argument(
        "--kmeans-inits", type=positive_int, default=100, help="k-means random initialisations (default 100)"
    )
    p.add_argument(
        "--probe-epochs", type=positive_int, default=30, help="epochs of the linear softmax probe (default 30)"
    )
    p.add_argument(
        "--grid-extras",
        action="store_true",
        help="on a grid of codes, also run the converged logistic regression and the 10-NN on the flattened grid "
        "(they run on flat codes always; on a 7x7x64 grid they take some 5 minutes on 2 cores)",
    )
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    return p


def moved_bench():
    """``softvq-bench`` until 1.0: the benchmark of this project's machines left the package in 0.4."""
    print(
        "error: softvq-bench moved out of the installed package in 0.4; run `python -m benchmarks.bench` "
        "from a clone of the repository",
        file=sys.stderr,
    )
    sys.exit(2)
