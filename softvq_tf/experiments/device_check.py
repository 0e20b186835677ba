"""The project's maths on an accelerator that has no TensorFlow: the layer tests, then a timed ``model.fit``.

    KERAS_BACKEND=jax python -m softvq_tf.experiments.device_check --data-dir /usr/share/datasets/fashion-mnist

needs only Keras, JAX or PyTorch, NumPy and pytest. It

1. runs the portable test suite (``tests/portable``: shapes, NumPy references,
   models, the README's layer examples) on the loaded backend, with
   TensorFlow made unimportable;
2. times ``model.fit`` of the paper's MLP soft VQ-VAE (d = 64, K = 128,
   batch 32, Adam 3e-4, epsilon 1e-8) on the training images of an IDX data
   set (Fashion-MNIST or MNIST), and checks that its loss fell and that it
   uses more than one codeword;
3. writes the device, the backend, the test summary and steps/s as Markdown
   (``--output``) and prints it.

steps/s = (steps of the timed epochs) / (their wall time), after one untimed
warm-up epoch that compiles the step.
"""

import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from softvq_tf.training.errors import ArgumentParser, UsageError, run_cli

REPO = pathlib.Path(__file__).resolve().parents[2]


def device_name():
    """The accelerator (or CPU) the loaded Keras backend computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {getattr(device, 'device_kind', device)}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)}"
        return "cpu"
    return backend


def run_portable_tests():
    """``pytest tests/portable`` in a child process on this backend; returns (passed, summary line)."""
    folder = REPO / "tests" / "portable"
    if not folder.is_dir():
        return False, f"{folder} not found: run the check from a clone of the repository"
    env = {**os.environ, "SOFTVQ_WITHOUT_TENSORFLOW": "1", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(folder)]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if " passed" in line or " failed" in line or "error" in line]
    summary = lines[-1].strip("= ") if lines else (result.stdout + result.stderr)[-500:]
    return result.returncode == 0, summary


def load_images(data_dir, limit):
    """The first ``limit`` training images of the IDX set in ``data_dir``, as float32 in [0, 1], ``[N, 28, 28, 1]``.

    Read by the training application's own reader (``data.load_splits``), which needs no TensorFlow for IDX files.
    """
    from softvq_tf.training.data import load_splits

    return (load_splits("fashion_mnist", data_dir).x_train[:limit] / 255.0).astype(np.float32)


def timed_fit(images, steps, epochs, batch_size=32, seed=0):
    """Fit the MLP soft VQ-VAE; returns (steps/s of the timed epochs, warm-up and last epoch loss, codewords in use)."""
    import keras

    from softvq_tf.layers import SoftVectorQuantizer
    from softvq_tf.models import Autoencoder

    keras.utils.set_random_seed(seed)
    model = Autoencoder(
        "mlp",
        images.shape[1:],
        64,
        SoftVectorQuantizer(128, commitment=2.5, vq_weight=3.0, seed=seed, name="bottleneck"),
        data_variance=float(images.var()),
    )
    # Several steps per compiled call where the backend allows it (PyTorch's trainer does not).
    per_call = 1 if keras.backend.backend() == "torch" else math.gcd(steps, 50)
    model.compile(optimizer=keras.optimizers.Adam(3e-4, epsilon=1e-8), steps_per_execution=per_call)
    data = images[: steps * batch_size]
    warm_up = model.fit(data, batch_size=batch_size, epochs=1, shuffle=True, verbose=0).history  # compiles the step
    start = time.perf_counter()
    history = model.fit(data, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0).history
    seconds = time.perf_counter() - start
    return steps * epochs / seconds, warm_up["loss"][0], history["loss"][-1], history["codewords_in_use"][-1]


def main(argv=None):
    parser = ArgumentParser(prog="python -m softvq_tf.experiments.device_check", description=__doc__)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="folder with the IDX files")
    parser.add_argument("--steps", type=int, default=500, help="steps per timed epoch (default 500)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up (default 3)")
    parser.add_argument("--skip-tests", action="store_true", help="time the fit only")
    parser.add_argument("--output", help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.epochs < 1:
        raise UsageError("--steps and --epochs must be >= 1")
    if not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir} is not a directory; point it at the IDX files of Fashion-MNIST")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    backend, device = keras.backend.backend(), device_name()
    passed, summary = (True, "skipped (--skip-tests)") if args.skip_tests else run_portable_tests()
    images = load_images(args.data_dir, args.steps * 32)  # a missing or corrupt file: one DataError line
    steps_per_s, first, last, in_use = timed_fit(images, args.steps, args.epochs)
    fit_ok = last < first and in_use > 1
    lines = [
        f"device_check on {device}, Keras {keras.__version__} ({backend} backend)",
        f"- portable tests: {summary}",
        f"- MLP soft VQ-VAE (d 64, K 128, batch 32), {args.steps * 32} training images of {args.data_dir}: "
        f"{steps_per_s:.1f} steps/s over {args.epochs} x {args.steps} steps after a warm-up epoch; "
        f"loss {first:.4f} -> {last:.4f}, {in_use:.0f} codewords in use",
    ]
    report = "\n".join(lines)
    print(report)
    if args.output:
        pathlib.Path(args.output).write_text(report + "\n")
    if not (passed and fit_ok):
        print("error: " + ("the portable tests failed" if not passed else "the fit did not learn"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
