"""Command-line front end of ``train.py``: flags -> RunConfig -> ``training.train``."""

import os
import sys
import typing
import warnings
from argparse import SUPPRESS, Action

from softvq_tf.training.config import APPLIES_TO, FIELDS, epoch_length, resolve_config
from softvq_tf.training.errors import ArgumentParser, console_entry

# Flags renamed since 0.1: old -> new.
RENAMED_FLAGS = {"--checkpoint-every": "--epoch-steps"}
FLAG_FIELDS = {field.metadata["flag"]: name for name, field in FIELDS.items() if field.metadata.get("flag")}


class DeprecatedFlag(Action):
    """A renamed flag: stores its value under the new flag's setting, with one warning line naming the new flag."""

    def __init__(self, option_strings, dest, new_flag, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser, namespace, values, option_string=None):
        message = f"{option_string} is deprecated and will be removed in 1.0; use {self.new_flag}"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        print(f"warning: {message}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def train_parser():
    """The ``train.py`` / ``softvq-train`` parser: one flag per ``RunConfig`` setting that has one, plus the
    run's manners.
    """
    p = ArgumentParser(
        description="Train an autoencoder with one of the bottlenecks; defaults come from the paper's "
        "preset for --dataset.",
    )
    for name, field in FIELDS.items():
        meta = field.metadata
        if not meta.get("flag"):
            continue
        help_text = meta["help"] + (f" ({', '.join(APPLIES_TO[name])})" if name in APPLIES_TO else "")
        kwargs = dict(dest=name, help=help_text)
        if name in ("dataset", "bottleneck"):
            kwargs["default"] = field.default
        if meta.get("action"):
            kwargs.update(action=meta["action"], default=None)
        else:
            kind = next((t for t in typing.get_args(field.type) if t is not type(None)), field.type)
            kwargs["type"] = kind
            if meta.get("rule") is not None and meta["rule"].choices and name not in ("dataset", "bottleneck"):
                kwargs["choices"] = meta["rule"].choices
        p.add_argument(meta["flag"], **kwargs)
    # Renamed flags keep working (CHANGELOG.md): each warns once, naming its new name.
    for old, new in RENAMED_FLAGS.items():
        p.add_argument(old, dest=FLAG_FIELDS[new], type=int, action=DeprecatedFlag, new_flag=new, help=SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument(
        "--dry-run", action="store_true", help="print the resolved settings and the run directory, then exit"
    )
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    return p


def main(argv=None):
    args = vars(train_parser().parse_args(argv))
    quiet, dry_run, verbose = args.pop("quiet"), args.pop("dry_run"), args.pop("verbose")
    config = resolve_config(args.pop("dataset"), args.pop("bottleneck"), **args)
    from softvq_tf.training.data import load_splits, needs_tensorflow
    from softvq_tf.training.runtime import start_tensorflow

    # Everything that can be checked is checked before TensorFlow loads. TFDS
    # itself needs TensorFlow, so that source loads it first (a dry run skips it).
    from_tfds = needs_tensorflow(config.dataset, config.data_dir)
    start = lambda: start_tensorflow(verbose, create_devices=config.distribute != "multi_worker")  # noqa: E731
    splits = None
    if not (dry_run and from_tfds):
        if from_tfds:
            start()
        splits = load_splits(config.dataset, config.data_dir, config.validation_split)
    steps_per_epoch = epoch_length(config, len(splits.x_train)) if splits else None
    print("settings:", ", ".join(f"{k}={v}" for k, v in sorted(vars(config).items())), flush=True)
    if dry_run:
        schedule = f", {config.steps // steps_per_epoch} epochs of {steps_per_epoch} steps" if steps_per_epoch else ""
        print(f"run directory: {config.run_dir}{schedule} (dry run: nothing trained)")
        return 0
    if not from_tfds:
        start()
    from softvq_tf.training.fit import train

    run_dir = train(config, verbose=2 if quiet else 1, splits=splits).run_dir
    print(f"done: {run_dir} (encoder SavedModel in {os.path.join(run_dir, 'encoder')})")
    return 0


run = console_entry(main)  # the softvq-* console script


if __name__ == "__main__":
    run()
