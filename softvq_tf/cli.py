"""Command-line front end of ``train.py``: flags -> RunConfig -> ``training.train``."""

import argparse
import os

from softvq_tf import BOTTLENECKS
from softvq_tf.config import DATASETS, DISTRIBUTE, epoch_length, resolve_config
from softvq_tf.errors import ArgumentParser


def train_parser():
    p = ArgumentParser(
        prog="train.py",
        description="Train an autoencoder with one of six bottlenecks; defaults come from the paper's preset for --dataset.",
    )
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default: digits, bundled)")
    p.add_argument("--data-dir", help="folder with the data set's standard files instead of TensorFlow Datasets")
    p.add_argument("--bottleneck", default="soft_vq", help=f"one of {', '.join(BOTTLENECKS)} (default: soft_vq)")
    p.add_argument("--K", dest="num_codewords", type=int, help="codebook size (vq, soft_vq)")
    p.add_argument("--latent-dim", type=int, help="d, the size of z_e")
    p.add_argument("--kl-weight", type=float, help="weight of the KL term (vae 1, beta_vae: the paper's beta)")
    p.add_argument("--commitment", type=float, help="commitment weight, the beta of eq. 27 (vq, soft_vq)")
    p.add_argument("--vq-weight", type=float, help="w, the weight of the whole VQ loss")
    p.add_argument("--noise-std", type=float, help="std of the noise added to z_e before soft quantization (training only)")
    p.add_argument("--likelihood", choices=("original", "gaussian"), help="soft VQ weights: the notebooks' (+s_k) or textbook (-d s_k)")
    p.add_argument("--ema-decay", type=float, help="update the codebook by moving averages with this decay, e.g. 0.99 (vq)")
    p.add_argument("--kmeans-init", action="store_true", default=None,
                   help="start the codebook at k-means centres of the first batches' codes (vq, soft_vq)")
    p.add_argument("--dead-code-steps", type=int,
                   help="move a codeword nobody used for this many steps onto a random code of the batch (vq, soft_vq)")
    p.add_argument("--steps", type=int, help="training iterations")
    p.add_argument("--batch-size", type=int, help="global batch size (default 32)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 3e-4)")
    p.add_argument("--adam-epsilon", type=float, help="Adam epsilon (default 1e-8, TF1's AdamOptimizer as in the notebooks)")
    p.add_argument("--seed", type=int, help="seed for initialisation, shuffling and noise (default 0)")
    p.add_argument("--validation-split", type=float, help="hold out this fraction of train; probes then use it as the test set")
    p.add_argument("--steps-per-execution", type=int, help="training steps per call into the TF graph")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the train step with XLA (default: on for the float32 MLP on one replica, where it is "
                        "fastest; --no-jit-compile runs TensorFlow's ops with op determinism instead)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), help="compute precision (default float32)")
    p.add_argument("--checkpoint-every", type=int, help="steps between epoch ends (logs, checkpoints, backups)")
    p.add_argument("--distribute", choices=DISTRIBUTE, help="tf.distribute strategy (default auto: mirrored over several GPUs)")
    p.add_argument("--out", help="folder for runs (default runs/)")
    p.add_argument("--name", help="run directory name (default from dataset, bottleneck, d, K, seed)")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and the run directory, then exit")
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    return p


def main(argv=None):
    args = vars(train_parser().parse_args(argv))
    quiet, dry_run, verbose = args.pop("quiet"), args.pop("dry_run"), args.pop("verbose")
    config = resolve_config(args.pop("dataset"), args.pop("bottleneck"), **args)
    from softvq_tf.data import load_splits, needs_tensorflow
    from softvq_tf.runtime import start_tensorflow

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
    from softvq_tf.training import train

    run_dir = train(config, verbose=2 if quiet else 1, splits=splits).run_dir
    print(f"done: {run_dir} (encoder SavedModel in {os.path.join(run_dir, 'encoder')})")
    return 0
