"""Speed benchmark: training throughput of the real ``model.fit`` path against the machine's peak.

    python -m softvq_tf.bench [--steps 600] [--repeats 3] [--output results/benchmarks.md]

Measures, in one process: the float32 matmul peak (2048^3, best of 30), then the
steady-state samples/s of ``model.fit`` (epochs after the first, inside one fit,
as in real training) for the MNIST MLP soft VQ-VAE at batch 32 and 64 and the
CNN soft VQ-VAE at batch 32, with the levers: Keras vs fused Adam,
``steps_per_execution``, XLA ``jit_compile`` and bfloat16 mixed precision; and
the achieved model GFLOP/s (forward + backward = 3 x forward FLOPs) as a
fraction of the peak. Also times the probes on 10,000 latents against plain
scikit-learn."""

import os
import platform
import sys
import time

import numpy as np

from softvq_tf.errors import ArgumentParser, run_cli


def matmul_peak_gflops(n=2048, repeats=30):
    """(median, best) GFLOP/s of an ``n^3`` float32 matmul; the best is the peak the bench divides by."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    mm().numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mm().numpy()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / np.median(times) / 1e9, 2 * n**3 / min(times) / 1e9


def forward_flops_per_sample(model):
    """Multiply-adds x 2 of every Dense, Conv2D, Conv2DTranspose and the quantizer's two matmuls."""
    import keras

    flops = 0
    for net in (model.encoder, model.decoder):
        for layer in net.layers:
            if isinstance(layer, keras.layers.Dense):
                flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                kh, kw, a, b = layer.kernel.shape  # Conv2DTranspose kernels are [kh, kw, out, in]
                out_shape = layer.output.shape if isinstance(layer, keras.layers.Conv2D) else layer.input.shape
                flops += 2 * kh * kw * a * b * out_shape[1] * out_shape[2]
    codebook = getattr(model.bottleneck, "codebook", None)
    if codebook is not None:
        flops += 2 * 2 * codebook.shape[0] * codebook.shape[1]  # distances and the posterior mean
    return flops


def _epoch_timer():
    """A Keras callback that records the wall time of every epoch in ``.seconds``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def fit_throughput(dataset, batch_size, steps, steps_per_execution=1, jit_compile=False, bf16=False,
                   fused_adam=True, repeats=3):
    """Steady-state samples/s of one ``model.fit`` on random uint8 images.

    One fit of ``1 + repeats`` epochs of ``steps`` steps: the first epoch
    (tracing, compilation, warm-up) is dropped, the others are timed one by
    one by a callback; returns (median, best) samples/s and forward FLOPs per
    sample. Timing inside one fit matches real training, which is one long fit.
    """
    import keras

    from softvq_tf.config import resolve_config
    from softvq_tf.optimizers import FusedAdam
    from softvq_tf.training import build_model, make_dataset

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    try:
        config = resolve_config(dataset, "soft_vq", batch_size=batch_size, steps_per_execution=steps_per_execution)
        images = np.random.default_rng(0).integers(0, 256, size=(8192, *config.image_shape), dtype=np.uint8)
        model = build_model(config, data_variance=0.1)
        optimizer = FusedAdam(config.lr) if fused_adam else keras.optimizers.Adam(config.lr)
        model.compile(optimizer, steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        timer = _epoch_timer()
        model.fit(make_dataset(images, config, 0), epochs=1 + repeats, steps_per_epoch=steps, verbose=0,
                  callbacks=[timer], shuffle=False)
        rates = [steps * batch_size / s for s in timer.seconds[1:]]
        return float(np.median(rates)), float(max(rates)), forward_flops_per_sample(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def probe_timings(n=10_000, d=64, kmeans_inits=100):
    """Seconds of the project's probes vs plain scikit-learn calls on the same latents."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score

    from softvq_tf import probes

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
    probes.nmi(y, clusters), probes.clustering_accuracy(y, clusters)
    timings["NMI + Hungarian ACC (softvq_tf)"] = time.perf_counter() - t
    t = time.perf_counter()
    probes.linear_probe_accuracy(z[: n // 2], y[: n // 2], z[n // 2 :], y[n // 2 :])
    timings["linear softmax probe (softvq_tf, Keras)"] = time.perf_counter() - t
    t = time.perf_counter()
    LogisticRegression(max_iter=1000).fit(z[: n // 2], y[: n // 2]).score(z[n // 2 :], y[n // 2 :])
    timings["multinomial logistic regression (sklearn)"] = time.perf_counter() - t
    return timings


def main(argv=None):
    p = ArgumentParser(prog="python -m softvq_tf.bench", description="Training throughput vs the machine's matmul peak.")
    p.add_argument("--steps", type=int, default=600, help="steps per timed epoch (default 600; CNN: a tenth)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per configuration (default 3)")
    p.add_argument("--kmeans-inits", type=int, default=100)
    p.add_argument("--output", help="write a Markdown report here (e.g. results/benchmarks.md)")
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's C++ start-up log")
    args = p.parse_args(argv)
    from softvq_tf.runtime import start_tensorflow

    tf = start_tensorflow(args.verbose)

    from softvq_tf.training import set_op_determinism

    median_peak, peak = matmul_peak_gflops()
    print(f"float32 matmul (2048^3): best {peak:.1f} GFLOP/s (the peak), median {median_peak:.1f}", flush=True)
    # (network, batch, steps_per_execution, XLA, bf16, fused Adam)
    cases = [
        ("mnist", 32, 1, False, False, False), ("mnist", 32, 1, False, False, True), ("mnist", 32, 50, False, False, True),
        ("mnist", 32, 50, True, False, True), ("mnist", 32, 50, False, True, True),
        ("mnist", 64, 1, False, False, False), ("mnist", 64, 1, False, False, True), ("mnist", 64, 50, False, False, True),
        ("mnist", 64, 50, True, False, True), ("mnist", 64, 50, False, True, True),
        ("cifar10", 32, 1, False, False, False), ("cifar10", 32, 10, False, False, True), ("cifar10", 32, 10, False, True, True),
    ]
    rows = []
    for dataset, batch, spe, jit, bf16, fused in cases:
        steps = args.steps if dataset == "mnist" else max(args.steps // 10, 1)
        spe = min(spe, steps)  # a smoke run with very few steps
        steps = steps // spe * spe
        flags = (dataset, batch, spe, jit, bf16, "fused" if fused else "Keras")
        # As in training.train: op determinism on, except under XLA (Keras drops XLA under it).
        set_op_determinism(not jit)
        try:
            median, best, flops = fit_throughput(dataset, batch, steps, spe, jit, bf16, fused, args.repeats)
            gflops = [3 * flops * rate / 1e9 for rate in (median, best)]
            row = (*flags, f"{median:,.0f}", f"{median / batch:.1f}", f"{gflops[0]:.1f}",
                   f"{100 * gflops[0] / peak:.0f}%", f"{100 * gflops[1] / peak:.0f}%")
        except Exception as error:  # report a lever that does not work here rather than stop
            row = (*flags, f"failed: {type(error).__name__}", "-", "-", "-", "-")
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    timings = probe_timings(kmeans_inits=args.kmeans_inits)
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.1f} s", flush=True)
    if args.output:
        from softvq_tf.rundir import write_atomic

        net = {"mnist": "MLP 784-500-500-2000-64, K=128", "cifar10": "CNN 64-128-256-512, d=256, K=32"}
        lines = [
            "# Benchmarks", "",
            f"Command: `python -m softvq_tf.bench {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
            f"run {time.strftime('%Y-%m-%d')}.", "",
            f"float32 matmul peak (2048^3, best of 30): **{peak:.1f} GFLOP/s** (median {median_peak:.1f})", "",
            f"Soft VQ-VAE training through `model.fit` (the project's input pipeline; op determinism on except with XLA, as in training) on random "
            f"uint8 images: one fit of 1 + {args.repeats} epochs of --steps steps (CNN: a tenth), the first epoch "
            "dropped; samples/s is the median of the timed epochs. Model GFLOP/s = 3 x forward FLOPs x samples/s; "
            "'of peak' is that over the float32 matmul peak (median epoch, and best epoch).", "",
            "| network | batch | steps_per_execution | XLA | bf16 | Adam | samples/s | steps/s | model GFLOP/s | of peak | of peak (best) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [f"| {net[r[0]]} | " + " | ".join(map(str, r[1:])) + " |" for r in rows]
        lines += ["", "Probes on 10,000 synthetic 64-d latents (10 classes):", "", "| probe | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        write_atomic(args.output, "\n".join(lines) + "\n")
        print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
