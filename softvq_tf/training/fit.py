"""Train one autoencoder with ``model.fit`` under a ``tf.distribute`` strategy.

``train(config)`` is what ``train.py`` calls: it resolves the strategy, loads
the data, builds and fits the model with Keras callbacks (progress bar,
TensorBoard, checkpoints, BackupAndRestore, NaN guard), then writes the run
directory (see ``softvq_tf.rundir``). Running the same command again after a
kill resumes from the last backup.
"""

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from softvq_tf import compat
from softvq_tf.layers import make_bottleneck
from softvq_tf.models import Autoencoder, FusedAdam
from softvq_tf.models.networks import start_output_at_data_mean
from softvq_tf.options import QUANTIZERS
from softvq_tf.training import figures, rundir, runtime
from softvq_tf.training.backup import AtomicBackupAndRestore, agree_on_epoch
from softvq_tf.training.config import RunConfig, epoch_length, identity_changes, layer_options
from softvq_tf.training.data import load_splits, preprocess
from softvq_tf.training.errors import TrainingError, UsageError
from softvq_tf.training.export import export_encoder


def set_op_determinism(enabled):
    """TensorFlow's op determinism, for runs without XLA.

    Keras silently drops ``jit_compile`` when op determinism is on, so an XLA
    run turns it off. XLA on CPU is bit-reproducible in practice: the same
    command twice gives the same weights digest, and a run killed and resumed
    matches an uninterrupted one (tests/test_distribute.py, on the XLA path).
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        compat.disable_op_determinism()


COLLECTIVE_TIMEOUT_SECONDS = 600  # far above a step, XLA's first compile included


def make_strategy(mode):
    """``auto``: MirroredStrategy over several GPUs, else the default strategy.

    ``mirrored`` mirrors over every GPU, or every logical CPU device when there
    is no GPU (useful for tests); ``multi_worker`` reads ``TF_CONFIG``.
    """
    if mode == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UsageError(
                "--distribute multi_worker needs TF_CONFIG (cluster and task) in the environment; "
                "see docs/guide/scaling.md"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise UsageError("TF_CONFIG is not valid JSON") from None
        # A collective that waits longer than this for a peer fails, so a worker that loses its peer exits
        # instead of hanging (on loopback a dead peer's closed socket ends it at once).
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        with runtime.quietly():  # starts the runtime: its C++ start-up log, as in runtime.start_tensorflow
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if mode == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        # CPU replicas share host memory: reduce on one device rather than with collectives.
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if mode == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Only the chief writes the run directory (multi-worker: task 0 of ``worker``, or ``chief``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def make_dataset(images, config, seed, start_step=0):
    """Infinite shuffled batches of preprocessed images, from batch ``start_step`` on.

    The sample stream is a concatenation of passes, each a stateless
    permutation seeded by ``(seed, pass)``, cut into batches. So the order is
    the same however often or wherever (one replica or many) the pipeline is
    instantiated (``Dataset.shuffle`` keeps hidden state that advances with
    every new iterator), and a resumed run continues the stream exactly where
    the interrupted one stopped instead of starting pass 0 again.

    The pipeline runs inline, in the thread that asks for the batch: no
    parallel map, no prefetch, no autotuning. Gathering and scaling one batch
    of in-memory images costs next to nothing, and a step then has no
    hand-off between tf.data's threads: with them, some whole runs kept half
    their speed (docs/reports/speed.md). Same batches in the same order either way.
    """
    images = tf.constant(images)
    n = int(images.shape[0])
    first_sample = start_step * config.batch_size
    first_pass = first_sample // n

    def one_pass(index):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return tf.data.Dataset.from_tensor_slices(order)

    ds = tf.data.Dataset.range(first_pass, 2**62).flat_map(one_pass).skip(first_sample - first_pass * n)
    ds = ds.batch(config.batch_size, drop_remainder=True)
    ds = ds.map(lambda i: preprocess(tf.gather(images, i), config.pixel_max, config.pixel_offset))
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False  # no background thread tuning buffers that are not there
    # Each worker reads the in-memory array; DATA sharding splits its batches.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def build_model(config, data_variance, mean_image=None):
    """The ``Autoencoder`` that ``config`` describes, its bottleneck built from the config's layer options.

    ``mean_image``: the preprocessed training images' mean, for ``--output-bias data_mean``.
    """
    bottleneck = make_bottleneck(config.bottleneck, **layer_options(config), seed=config.seed)
    model = Autoencoder(
        config.network,
        config.image_shape,
        config.latent_dim,
        bottleneck,
        reconstruction_scale=config.reconstruction_scale,
        data_variance=data_variance,
        name="autoencoder",
    )
    if config.output_bias == "data_mean":
        if mean_image is None:
            raise ValueError("output_bias='data_mean' needs the training images' mean_image")
        start_output_at_data_mean(model.decoder, config.network, mean_image)
    return model


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    model: Autoencoder
    strategy: tf.distribute.Strategy
    history: dict
    weights_digest: str
    execution: dict


def execution_path(xla, strategy, steps_per_execution):
    """How a run is executed, where that changes its final weights (not what it computes: see ``run_identity``).

    Runs with the same identity and seed reach bit-identical weights only on
    the same path: XLA fuses and reorders floating-point work, a mirrored
    batch is summed over replicas in another order, several steps per graph
    call compile to another program, and other TensorFlow or Keras releases
    may change kernels, as may another CPU's instruction set. Patch releases
    are assumed to keep them.
    """
    return {
        "xla": bool(xla),
        "replicas": int(strategy.num_replicas_in_sync),
        "steps_per_execution": steps_per_execution,
        "tensorflow": ".".join(tf.__version__.split(".")[:2]),
        "keras": ".".join(keras.__version__.split(".")[:2]),
        "cpu_features": cpu_features(),
    }


# Instruction-set extensions that XLA's and oneDNN's CPU kernels choose their code by.
KERNEL_CPU_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_features():
    """The ``KERNEL_CPU_FEATURES`` this CPU has (Linux), else the machine name: kernels differ across them."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = [name for name in KERNEL_CPU_FEATURES if name in flags]
    return f"{platform.machine()}: {' '.join(found)}".strip()


def planned_execution(config):
    """The ``execution_path`` that ``train(config)`` would take on this machine (None: cannot tell before it starts)."""
    if config.distribute == "multi_worker":
        return None
    strategy = make_strategy(config.distribute)
    return execution_path(use_xla(config, strategy), strategy, config.steps_per_execution)


def weights_digest(model):
    """SHA-256 of every weight's bytes: equal digests mean bit-identical models."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


class NaNGuard(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN that also remembers the step where the loss broke."""

    def __init__(self):
        super().__init__()
        self.bad_step = None
        self._epoch = 0
        self.steps_per_epoch = 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.all(np.isfinite(loss)) and self.bad_step is None:
            self.bad_step = self._epoch * self.steps_per_epoch + batch + 1
        super().on_train_batch_end(batch, logs)


def _prepare_run_dir(config):
    """Create the run directory, or check that what it holds belongs to this config.

    A finished run is never trained again; an unfinished one is resumed only
    by the same settings (its identity, and the epoch length its backup counts in).
    """
    path = config.run_dir
    config_path = os.path.join(path, "config.json")
    if os.path.exists(config_path):
        previous = RunConfig.load(path)
        changed = identity_changes(previous, config)
        if rundir.is_complete(path):
            if changed:
                raise UsageError(
                    f"{path} holds a finished run with other settings ({', '.join(changed)}); choose "
                    "another --name or --out"
                )
            raise UsageError(f"run {path} is already complete; choose another --name or delete it")
        changed += [k for k in ("steps_per_execution", "epoch_steps") if getattr(previous, k) != getattr(config, k)]
        if changed:
            raise UsageError(
                f"{path} holds an unfinished run with other settings ({', '.join(changed)}); "
                "run its own command again to resume it, or choose another --name"
            )
    os.makedirs(path, exist_ok=True)
    rundir.write_atomic(config_path, config.to_json() + "\n")


def use_xla(config, strategy):
    """``--jit-compile`` if given; by default XLA only where it measured fastest (results/benchmarks.md).

    That is the float32 MLP on a single replica. XLA's CPU code ran the CNN's
    convolutions at a fifth of the speed of TensorFlow's own kernels, and the
    bfloat16 MLP below the float32 one.
    """
    if config.jit_compile is not None:
        return config.jit_compile
    distributed = isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))
    return (
        not distributed
        and strategy.num_replicas_in_sync == 1
        and config.network == "mlp"
        and config.precision == "float32"
    )


def _start_session(config):
    """Seed everything, set the precision policy, XLA or op determinism; returns ``(strategy, xla)``."""
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)
    strategy = make_strategy(config.distribute)
    xla = use_xla(config, strategy)
    set_op_determinism(not xla)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UsageError(
            f"--batch-size {config.batch_size} is not divisible by the {replicas} replicas; use a multiple "
            f"of {replicas}"
        )
    return strategy, xla


def _callbacks(work_dir, chief, nan_guard, backup):
    """NaN guard, backups for resume, per-epoch CSV log; on the chief also the best checkpoint and TensorBoard."""
    callbacks = [
        nan_guard,
        # Before the backup: a kill between the two repeats an epoch's row (read_epoch_log keeps the last),
        # never loses it.
        keras.callbacks.CSVLogger(os.path.join(work_dir, "epochs.csv"), append=True),
        backup,
    ]
    if chief:
        os.makedirs(os.path.join(work_dir, "checkpoints"), exist_ok=True)
        callbacks += [
            keras.callbacks.ModelCheckpoint(
                os.path.join(work_dir, "checkpoints", "best.weights.h5"),
                monitor="loss",
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.TensorBoard(os.path.join(work_dir, "logs")),
        ]
    return callbacks


def read_epoch_log(path):
    """Per-epoch metrics from the CSV log, ``{name: [value per epoch]}``; a repeated epoch keeps its last row."""
    rows = {}
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                # Keras's CSVLogger writes NA for the validation columns of a fit without validation.
                epoch = int(row.pop("epoch"))
                rows[epoch] = {k: float(v) for k, v in row.items() if v not in ("NA", "")}
    names = sorted({k for row in rows.values() for k in row})
    return {name: [rows[e].get(name, float("nan")) for e in sorted(rows)] for name in names}


def train(config: RunConfig, verbose=1, log=print, splits=None):
    """Train, then (on the chief) write the complete run directory; returns a ``TrainResult``.

    ``splits`` may be passed when already loaded (the CLI loads the data before TensorFlow).
    """
    strategy, xla = _start_session(config)
    chief = is_chief(strategy)
    # One writer per run directory: the chief holds its lock from before the first write to the last.
    with rundir.RunLock(config.run_dir) if chief else contextlib.nullcontext():
        return _train(config, strategy, xla, chief, verbose, log, splits)


def _train(config, strategy, xla, chief, verbose, log, splits):
    if splits is None:
        splits = load_splits(config.dataset, config.data_dir, config.validation_split)  # holdout fixed across seeds
    steps_per_epoch = epoch_length(config, len(splits.x_train))
    epochs = config.steps // steps_per_epoch
    if chief:
        _prepare_run_dir(config)
    task = _task_name(strategy)
    backup_dir = os.path.join(config.run_dir, "backup", *([task] if task else []))
    # Every worker writes its outputs (calls into the model may need all workers' collectives); the others
    # write into a folder of their own beside the chief's files, removed when they are done or restarted.
    work_dir = config.run_dir if chief else os.path.join(config.run_dir, f".{task}")
    if not chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        os.makedirs(work_dir)
    try:
        return _fit_and_write(
            config, strategy, xla, chief, verbose, log, splits, steps_per_epoch, epochs, backup_dir, work_dir
        )
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)


def _task_name(strategy):
    """``worker-N`` (or ``chief-0``) for a worker of a multi-worker job, None on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and compat.in_multi_worker_mode(strategy)
    return f"{resolver.task_type}-{resolver.task_id}" if multi and resolver and resolver.task_type else None


def _fit_and_write(config, strategy, xla, chief, verbose, log, splits, steps_per_epoch, epochs, backup_dir, work_dir):
    images = preprocess(splits.x_train, config.pixel_max, config.pixel_offset).numpy()
    data_variance = float(np.var(images))
    mean_image = images.mean(axis=0) if config.output_bias == "data_mean" else None
    del images
    log(
        f"softvq_tf: {config.dataset} ({len(splits.x_train)} train / {len(splits.x_eval)} test), "
        f"{config.bottleneck}, {strategy.num_replicas_in_sync} replica(s){', XLA' if xla else ''}, "
        f"{epochs} x {steps_per_epoch} steps -> {config.run_dir}"
    )

    with strategy.scope():
        model = build_model(config, data_variance, mean_image)
        model.compile(
            optimizer=FusedAdam(config.lr, epsilon=config.adam_epsilon),
            steps_per_execution=config.steps_per_execution,
            jit_compile=xla,
        )
        model(tf.zeros([1, *config.image_shape]))  # build the weights so a backup can be restored into them
        backup = AtomicBackupAndRestore(backup_dir, log=log)
        agreed = agree_on_epoch(strategy, backup_dir, log) if _task_name(strategy) else None
        done = backup.restore(model, agreed) * steps_per_epoch  # optimizer slots, if built here, are mirrored too
    nan_guard = NaNGuard()
    nan_guard.steps_per_epoch = steps_per_epoch
    if done:
        log(f"resuming from the backup in {backup_dir} at step {done}")
    start = time.time()
    if not done and getattr(model.bottleneck, "needs_codebook_init", lambda: False)():
        _kmeans_init_codebook(model, splits.x_train, config, log)
    try:
        model.fit(
            make_dataset(splits.x_train, config, config.seed, start_step=done),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=_callbacks(work_dir, chief, nan_guard, backup),
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
    except PEER_LOST as error:
        if not _task_name(strategy):
            raise
        raise TrainingError(
            f"lost contact with another worker ({type(error).__name__}); start every worker again with the same "
            f"command: each resumes from its backup in {os.path.dirname(backup_dir)}"
        ) from None
    seconds = time.time() - start
    execution = execution_path(xla, strategy, config.steps_per_execution)
    if nan_guard.bad_step is not None:
        raise TrainingError(
            f"loss became NaN or inf at step {nan_guard.bad_step}; training stopped, the last good weights are in "
            f"{os.path.join(config.run_dir, 'checkpoints', 'best.weights.h5')}; to retry with a lower --lr, "
            f"delete {config.run_dir} or give the new run another --name"
        )
    digest = weights_digest(model)
    log(f"final weights sha256: {digest}")
    history = read_epoch_log(os.path.join(work_dir, "epochs.csv"))
    _write_outputs(model, config, splits, history, seconds, steps_per_epoch, digest, execution, work_dir)
    if chief and _task_name(strategy):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(backup_dir))  # the workers' backup folders are gone once each finished
    return TrainResult(config.run_dir, model, strategy, history, digest, execution)


# What a collective raises when a peer worker died or stopped answering.
PEER_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)

KMEANS_CODES_PER_CODEWORD = 16


def _kmeans_init_codebook(model, images, config, log):
    """Set the codebook to k-means centres of the codes of the run's first batches (about 16 per codeword).

    The batches are the ones training starts with (same seeded stream); the
    codes come from the untrained encoder, as in Jukebox and
    vector-quantize-pytorch's ``kmeans_init``, but before step 1 rather than
    inside it, so the result does not depend on the number of replicas.
    """
    batches = -(-KMEANS_CODES_PER_CODEWORD * config.num_codewords // config.batch_size)
    codes = [model.encode(x)[0].numpy() for x in make_dataset(images, config, config.seed).take(batches)]
    model.bottleneck.initialize_codebook(np.concatenate(codes), seed=config.seed)
    log(f"codebook initialised by k-means on {sum(len(c) for c in codes)} codes of the first {batches} batches")


def _write_outputs(model, config, splits, history, seconds, steps_per_epoch, digest, execution, path):
    rundir.write_json(
        os.path.join(path, "history.json"),
        {
            "history": history,
            "seconds_this_session": seconds,
            "weights_sha256": digest,
            "execution": execution,
            "steps": config.steps,
            "steps_per_epoch": steps_per_epoch,
            "data_variance": model.data_variance,
            "config": dataclasses.asdict(config),
        },
    )
    figures.save_reconstructions(model, splits.x_eval, config, os.path.join(path, "reconstructions.png"))
    if config.bottleneck in QUANTIZERS:
        figures.save_codebook_usage(model, splits.x_eval, config, history, os.path.join(path, "codebook.png"))
    with rundir.atomic_path(os.path.join(path, "autoencoder.keras")) as tmp:
        model.save(tmp)
    export_encoder(model, config, os.path.join(path, "encoder"))  # last: marks the run complete
