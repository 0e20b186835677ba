"""Speed: the default ``train.py`` path against this machine's ceiling for the model.

    python -m benchmarks.bench --data-dir /usr/share/datasets/fashion-mnist --output results/benchmarks.md

The ceiling of one training step is what no implementation of the model can
beat without fusing work away: every Dense / Conv layer's forward matmul and
its two backward matmuls (input and weight gradient; the first layer needs no
input gradient), plus the bottleneck's two matmuls and theirs, back to back in
one ``tf.function``, plus one fused Adam pass (TensorFlow's
``ResourceApplyAdam``, memory-bound) over every parameter. Element-wise work
(activations, losses, the bottleneck) is not in it, so only overlap or XLA
fusion can go beyond it.

The default path is ``python train.py`` with default flags, run whole in a
subprocess and timed by the wall clock: steps/s = (long - short steps) /
(long wall time - short wall time), so start-up, compilation and export
cancel while callbacks, backups, checkpoints and the input pipeline count.
Each pair runs ``--pairs`` times, to expose a run that goes slower than the
others. Everything is measured in one session, ceiling included, since a
machine's matmul peak varies from day to day (results/benchmarks.md).
"""

import os
import pickle
import platform
import tempfile
import time

import numpy as np

from benchmarks.train_runs import FASHION, time_train_runs
from softvq_tf.experiments.tables import command_line
from softvq_tf.training.errors import ArgumentParser, UsageError, console_entry


def _timed(fn, repeats, statistic=np.median):
    """``statistic`` (the median) of the seconds of ``fn()`` over ``repeats`` calls, after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(statistic(times))


def matmul_peak_gflops(dtype="float32", n=2048, repeats=30):
    """GFLOP/s of an ``n^3`` matmul (best of ``repeats``), the machine's peak in ``dtype``."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    mm = tf.function(lambda: tf.matmul(a, b))
    best = _timed(mm, repeats, statistic=min)
    return 2 * n**3 / best / 1e9


def _layer_ops(model):
    """``(op(x, w), input shape without batch, weight, transposed)`` for every matmul-like op of a training step.

    Each op's forward FLOPs are 2 x kernel size x positions: the output's for
    a matmul or convolution, the input's for a transposed convolution
    (``transposed``), which spreads each input position over the kernel.
    """
    import keras

    ops = []
    for net in (model.encoder, model.decoder):
        for layer in net.layers:
            if isinstance(layer, keras.layers.Dense):
                ops.append((lambda x, w: x @ w, layer.input.shape[1:], layer.kernel, False))
            elif isinstance(layer, keras.layers.Conv2DTranspose):
                ops.append(
                    (
                        lambda x, w, s=layer.strides: keras.ops.conv_transpose(x, w, s, "same"),
                        layer.input.shape[1:],
                        layer.kernel,
                        True,
                    )
                )
            elif isinstance(layer, keras.layers.Conv2D):
                ops.append(
                    (
                        lambda x, w, s=layer.strides: keras.ops.conv(x, w, s, "same"),
                        layer.input.shape[1:],
                        layer.kernel,
                        False,
                    )
                )
    codebook = model.bottleneck.codebook  # [d, K]: distances z @ E, posterior mean p @ E^T
    d, k = codebook.shape
    ops.append((lambda x, w: x @ w, (d,), codebook, False))
    ops.append((lambda x, w: x @ w, (k,), keras.ops.transpose(codebook), False))
    return ops


def ceiling(dataset, batch_size, precision="float32", repeats=50):
    """The step ceiling of the soft VQ-VAE of ``dataset``'s preset at ``batch_size``.

    Returns a dict with the matmul time, the fused Adam time (ms), the
    parameter count, the matmul FLOPs per step and the ceiling in steps/s.
    """
    import keras
    import tensorflow as tf

    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.fit import build_model

    keras.backend.clear_session()
    config = resolve_config(dataset, "soft_vq", batch_size=batch_size)
    model = build_model(config, data_variance=0.1)
    model(tf.zeros([1, *config.image_shape]))
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    rng = np.random.default_rng(0)
    tensors, flops = [], 0
    for index, (op, in_shape, weight, transposed) in enumerate(_layer_ops(model)):
        x = tf.constant(rng.normal(size=(batch_size, *in_shape)), dtype)
        w = tf.cast(keras.ops.convert_to_tensor(weight), dtype)
        y_shape = op(x, w).shape
        dy = tf.constant(rng.normal(size=y_shape), dtype)
        tensors.append((op, x, w, dy, index == 0))
        positions = int(np.prod((x.shape if transposed else y_shape)[:-1]))
        flops += 2 * positions * int(np.prod(w.shape)) * (2 if index == 0 else 3)

    @tf.function
    def matmuls():
        outputs = []
        for op, x, w, dy, first in tensors:
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = op(x, w)
            grads = tape.gradient(y, [w] if first else [x, w], output_gradients=dy)
            outputs += [y, *grads]
        return outputs

    variables = [tf.Variable(tf.zeros(v.shape)) for v in model.trainable_variables]
    slots = [(tf.Variable(tf.zeros(v.shape)), tf.Variable(tf.zeros(v.shape))) for v in variables]
    grads = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables]

    @tf.function
    def adam():
        for v, (m, s), g in zip(variables, slots, grads):
            tf.raw_ops.ResourceApplyAdam(
                var=v.handle,
                m=m.handle,
                v=s.handle,
                beta1_power=0.9,
                beta2_power=0.999,
                lr=3e-4,
                beta1=0.9,
                beta2=0.999,
                epsilon=1e-8,
                grad=g,
            )

    matmul_s, adam_s = _timed(matmuls, repeats), _timed(adam, repeats)
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return {
        "matmul_ms": 1e3 * matmul_s,
        "adam_ms": 1e3 * adam_s,
        "params": params,
        "matmul_gflop": flops / 1e9,
        "steps_per_s": 1.0 / (matmul_s + adam_s),
    }


def write_fake_cifar(folder, n_train=10_000, n_test=2_000):
    """Random images in CIFAR-10's python format, so the CNN runs through ``train.py`` as a user runs it."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    parts = [("data_batch_%d" % i, n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]
    for name, n in parts:
        batch = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)
    return folder


def probe_timings(n=10_000, d=64, kmeans_inits=100):
    """Seconds of the project's probes vs plain scikit-learn calls on the same latents."""
    from sklearn.cluster import KMeans

    from softvq_tf.experiments import probes

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, d)) * 3
    y = rng.integers(0, 10, n)
    z = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    timings = {}
    t = time.perf_counter()
    clusters, _ = probes.kmeans_labels(z, 10, kmeans_inits)
    timings["k-means (softvq_tf, %d inits)" % kmeans_inits] = time.perf_counter() - t
    t = time.perf_counter()
    KMeans(10, n_init=kmeans_inits, random_state=0).fit(z)
    timings["k-means (sklearn KMeans, n_init=%d)" % kmeans_inits] = time.perf_counter() - t
    t = time.perf_counter()
    probes.linear_probe_accuracy(z[: n // 2], y[: n // 2], z[n // 2 :], y[n // 2 :])
    timings["linear softmax probe (softvq_tf, Keras, 30 epochs)"] = time.perf_counter() - t
    return timings


CASES = [  # (label, network, batch, precision, extra train.py flags)
    ("default", "mlp", 64, "float32", []),
    ("default", "mlp", 32, "float32", []),
    ("--no-jit-compile (no XLA)", "mlp", 64, "float32", ["--no-jit-compile"]),
    ("--precision mixed_bfloat16", "mlp", 64, "mixed_bfloat16", ["--precision", "mixed_bfloat16"]),
    (
        "--precision mixed_bfloat16 --jit-compile",
        "mlp",
        64,
        "mixed_bfloat16",
        ["--precision", "mixed_bfloat16", "--jit-compile"],
    ),
    ("--precision mixed_bfloat16", "mlp", 32, "mixed_bfloat16", ["--precision", "mixed_bfloat16"]),
    ("default", "cnn", 32, "float32", []),
    ("--jit-compile", "cnn", 32, "float32", ["--jit-compile"]),
]


def _parse_cases(text, count):
    """``"1,3"`` -> ``[0, 2]`` (indices into ``CASES``); None -> all."""
    if text is None:
        return list(range(count))
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or not all(1 <= n <= count for n in numbers):
        raise UsageError(f"--cases must be comma-separated numbers from 1 to {count} (got {text!r})")
    return sorted({n - 1 for n in numbers})


def main(argv=None):
    p = ArgumentParser(
        prog="python -m benchmarks.bench", description="The default train.py path against the machine's ceiling."
    )
    p.add_argument("--data-dir", default=FASHION, help=f"Fashion-MNIST files for the MLP runs (default {FASHION})")
    p.add_argument("--short", type=int, default=500, help="steps of the short MLP run (default 500)")
    p.add_argument("--long", type=int, default=2500, help="steps of the long MLP run (default 2500)")
    p.add_argument("--cnn-short", type=int, default=50)
    p.add_argument("--cnn-long", type=int, default=300)
    p.add_argument("--pairs", type=int, default=2, help="(short, long) pairs per row (default 2)")
    p.add_argument("--repeats", type=int, default=50, help="timed calls of each ceiling part (default 50)")
    p.add_argument("--kmeans-inits", type=int, default=100)
    p.add_argument(
        "--cases", help="comma-separated numbers of the cases to time, 1-8 in the report's order (default all)"
    )
    p.add_argument("--output", help="write a Markdown report here (e.g. results/benchmarks.md)")
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_dir):
        raise UsageError(
            f"--data-dir {args.data_dir} does not exist; install Fashion-MNIST (apt-get install "
            "dataset-fashion-mnist) or pass its folder"
        )
    if not (0 < args.short < args.long and 0 < args.cnn_short < args.cnn_long and args.pairs >= 1):
        raise UsageError("need 0 < --short < --long, 0 < --cnn-short < --cnn-long and --pairs >= 1")
    chosen = _parse_cases(args.cases, len(CASES))
    from softvq_tf.training.runtime import start_tensorflow

    tf = start_tensorflow(args.verbose)
    peak_repeats = min(30, args.repeats)
    peaks = {
        "float32": matmul_peak_gflops("float32", repeats=peak_repeats),
        "mixed_bfloat16": matmul_peak_gflops("bfloat16", repeats=peak_repeats),
    }
    print(
        f"matmul peak (2048^3): float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['mixed_bfloat16']:.0f} GFLOP/s",
        flush=True,
    )
    mlp = ["--dataset", "fashion_mnist", "--data-dir", args.data_dir, "--bottleneck", "soft_vq"]
    cases = [CASES[i] for i in chosen]
    rows, ceilings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        cnn = [
            "--dataset",
            "cifar10",
            "--data-dir",
            write_fake_cifar(os.path.join(tmp, "cifar")),
            "--bottleneck",
            "soft_vq",
        ]
        for label, network, batch, precision, extra in cases:
            key = (network, batch, precision)
            if key not in ceilings:
                ceilings[key] = ceiling(
                    "fashion_mnist" if network == "mlp" else "cifar10", batch, precision, args.repeats
                )
            c = ceilings[key]
            short, long = (args.short, args.long) if network == "mlp" else (args.cnn_short, args.cnn_long)
            runs = time_train_runs(
                [*(mlp if network == "mlp" else cnn), "--batch-size", str(batch), *extra], short, long, args.pairs
            )
            rates = [r["steps_per_s"] for r in runs]
            row = dict(label=label, network=network, batch=batch, precision=precision, rates=rates, runs=runs, **c)
            rows.append(row)
            print(
                f"{network} batch {batch} {label}: ceiling {c['steps_per_s']:.1f} steps/s (matmuls "
                f"{c['matmul_ms']:.2f} ms "
                f"+ Adam {c['adam_ms']:.2f} ms, {c['params']:,} parameters); train.py "
                + ", ".join(f"{r:.1f}" for r in rates)
                + f" steps/s = {100 * max(rates) / c['steps_per_s']:.0f}% "
                f"(slowest {100 * min(rates) / c['steps_per_s']:.0f}%)",
                flush=True,
            )
    timings = probe_timings(kmeans_inits=args.kmeans_inits)
    if args.output:
        from softvq_tf.training.rundir import write_atomic

        write_atomic(args.output, report(rows, peaks, timings, args, argv, tf.__version__))
        print(f"written: {args.output}")
    return 0


def _run_note(run):
    steal = "-" if run["steal"] is None else f"{run['steal']:.1f}"
    return f"{run['cores']:.2f}, {steal}"


def report(rows, peaks, timings, args, argv, tf_version):
    net = {"mlp": "MLP 784-500-500-2000-64, K=128", "cnn": "CNN 64-128-256-512, d=256, K=32"}
    lines = [
        "# Benchmarks",
        "",
        command_line("python -m benchmarks.bench", argv),
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf_version}, run "
        f"{time.strftime('%Y-%m-%d')}, "
        "nothing else running.",
        "",
        f"Matmul peak (2048^3, best of 30): float32 **{peaks['float32']:.0f} GFLOP/s**, bfloat16 "
        f"**{peaks['mixed_bfloat16']:.0f} GFLOP/s**.",
        "",
        "Ceiling = every layer's forward and two backward matmuls (conv: convolutions) back to back in one "
        "tf.function, plus one fused Adam pass (ResourceApplyAdam) over all parameters; see `softvq_tf/bench.py`. "
        f"train.py = whole `python train.py` runs with default flags (plus the flag in the first column): "
        f"steps/s = (long - short) / (wall time of the long run - wall time of the short run), MLP {args.short} and "
        f"{args.long} steps on Fashion-MNIST, CNN {args.cnn_short} and {args.cnn_long} steps on random CIFAR-10-format "
        f"images; {args.pairs} pairs per row, each figure one pair.",
        "",
        "| network | flags | batch | matmuls (ms) | matmul GFLOP/s | Adam pass (ms) | parameters | ceiling (steps/s) "
        "| train.py (steps/s) | of ceiling (best / slowest) | long runs: cores busy, s stolen by the VM host |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {net[r['network']]} | {r['label']} | {r['batch']} | {r['matmul_ms']:.2f} | "
            f"{r['matmul_gflop'] / r['matmul_ms'] * 1e3:.0f} | {r['adam_ms']:.2f} | {r['params']:,} | "
            f"{r['steps_per_s']:.1f} | {', '.join(f'{x:.1f}' for x in r['rates'])} | "
            f"**{100 * max(r['rates']) / r['steps_per_s']:.0f}%** / {100 * min(r['rates']) / r['steps_per_s']:.0f}% | "
            + "; ".join(_run_note(x) for x in r["runs"])
            + " |"
        )
    lines += ["", "Probes on 10,000 synthetic 64-d latents (10 classes):", "", "| probe | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


run = console_entry(main)


if __name__ == "__main__":
    run()
