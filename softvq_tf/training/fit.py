"""Train one autoencoder with ``model.fit`` under a ``tf.distribute`` strategy.

``train(config)`` is what ``train.py`` calls: it resolves the strategy, loads
the data, builds and fits the model with Keras callbacks (progress bar,
TensorBoard, checkpoints, BackupAndRestore, NaN guard), then writes the run
directory (see ``softvq_tf.training.rundir``). Running the same command again after a
kill resumes from the last backup.
"""

import contextlib
import csv
import dataclasses
import hashlib
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from softvq_tf.layers import make_bottleneck
from softvq_tf.models import Autoencoder, FusedAdam
from softvq_tf.models.networks import start_output_at_data_mean
from softvq_tf.training import figures, rundir
from softvq_tf.training.backup import AtomicBackupAndRestore, agree_on_epoch
from softvq_tf.training.config import RunConfig, epoch_length, identity_changes, layer_options
from softvq_tf.training.data import load_splits, preprocess
from softvq_tf.training.errors import TrainingError, UsageError
from softvq_tf.training.export import export_encoder
from softvq_tf.training.strategy import (
    PEER_LOST,
    execution_path,
    is_chief,
    make_strategy,
    set_op_determinism,
    task_name,
    use_xla,
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
    bottleneck = make_bottleneck(config.bottleneck, **layer_options(config), seed=config.seed, name="bottleneck")
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


@dataclasses.dataclass(frozen=True)
class RunState:
    """Where one training run stands, computed once before ``model.fit``: its strategy, data, schedule and folders."""

    config: RunConfig
    strategy: tf.distribute.Strategy
    xla: bool
    chief: bool  # only the chief writes the run directory
    task: str  # ``worker-N`` in a multi-worker job, else None
    splits: object  # the data set's ``Splits``
    steps_per_epoch: int
    backup_dir: str
    # Every worker writes its outputs (calls into the model may need all workers' collectives); the others
    # write into a folder of their own beside the chief's files, removed when they are done or restarted.
    work_dir: str

    @property
    def epochs(self):
        return self.config.steps // self.steps_per_epoch


def train(config: RunConfig, verbose=1, log=print, splits=None):
    """Train, then (on the chief) write the complete run directory; returns a ``TrainResult``.

    ``splits`` may be passed when already loaded (the CLI loads the data before TensorFlow).
    """
    strategy, xla = _start_session(config)
    chief = is_chief(strategy)
    # One writer per run directory: the chief holds its lock from before the first write to the last.
    with rundir.RunLock(config.run_dir) if chief else contextlib.nullcontext():
        if splits is None:
            splits = load_splits(config.dataset, config.data_dir, config.validation_split)  # holdout fixed
        task = task_name(strategy)
        run = RunState(
            config=config,
            strategy=strategy,
            xla=xla,
            chief=chief,
            task=task,
            splits=splits,
            steps_per_epoch=epoch_length(config, len(splits.x_train)),
            backup_dir=os.path.join(config.run_dir, "backup", *([task] if task else [])),
            work_dir=config.run_dir if chief else os.path.join(config.run_dir, f".{task}"),
        )
        if chief:
            _prepare_run_dir(config)
        else:
            shutil.rmtree(run.work_dir, ignore_errors=True)
            os.makedirs(run.work_dir)
        try:
            return _fit_and_write(run, verbose, log)
        finally:
            if not chief:
                shutil.rmtree(run.work_dir, ignore_errors=True)


def _fit_and_write(run, verbose, log):
    config, strategy, splits = run.config, run.strategy, run.splits
    images = preprocess(splits.x_train, config.pixel_max, config.pixel_offset).numpy()
    data_variance = float(np.var(images))
    mean_image = images.mean(axis=0) if config.output_bias == "data_mean" else None
    del images
    log(
        f"softvq_tf: {config.dataset} ({len(splits.x_train)} train / {len(splits.x_eval)} test), "
        f"{config.bottleneck}, {strategy.num_replicas_in_sync} replica(s){', XLA' if run.xla else ''}, "
        f"{run.epochs} x {run.steps_per_epoch} steps -> {config.run_dir}"
    )

    with strategy.scope():
        model = build_model(config, data_variance, mean_image)
        model.compile(
            optimizer=FusedAdam(config.lr, epsilon=config.adam_epsilon),
            steps_per_execution=config.steps_per_execution,
            jit_compile=run.xla,
        )
        model(tf.zeros([1, *config.image_shape]))  # build the weights so a backup can be restored into them
        backup = AtomicBackupAndRestore(run.backup_dir, log=log)
        agreed = agree_on_epoch(strategy, run.backup_dir, log) if run.task else None
        done = backup.restore(model, agreed) * run.steps_per_epoch  # optimizer slots, if built here, are mirrored too
    nan_guard = NaNGuard()
    nan_guard.steps_per_epoch = run.steps_per_epoch
    if done:
        log(f"resuming from the backup in {run.backup_dir} at step {done}")
    start = time.time()
    if not done and model.bottleneck.needs_codebook_init():
        _kmeans_init_codebook(model, splits.x_train, config, log)
    try:
        model.fit(
            make_dataset(splits.x_train, config, config.seed, start_step=done),
            epochs=run.epochs,
            steps_per_epoch=run.steps_per_epoch,
            callbacks=_callbacks(run.work_dir, run.chief, nan_guard, backup),
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
    except PEER_LOST as error:
        if not run.task:
            raise
        raise TrainingError(
            f"lost contact with another worker ({type(error).__name__}); start every worker again with the same "
            f"command: each resumes from its backup in {os.path.dirname(run.backup_dir)}"
        ) from None
    seconds = time.time() - start
    execution = execution_path(run.xla, strategy, config.steps_per_execution)
    if nan_guard.bad_step is not None:
        raise TrainingError(
            f"loss became NaN or inf at step {nan_guard.bad_step}; training stopped, the last good weights are in "
            f"{os.path.join(config.run_dir, 'checkpoints', 'best.weights.h5')}; to retry with a lower --lr, "
            f"delete {config.run_dir} or give the new run another --name"
        )
    digest = weights_digest(model)
    log(f"final weights sha256: {digest}")
    history = read_epoch_log(os.path.join(run.work_dir, "epochs.csv"))
    _write_outputs(model, run, history, seconds, digest, execution)
    if run.chief and run.task:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(run.backup_dir))  # the workers' backup folders are gone once each finished
    return TrainResult(config.run_dir, model, strategy, history, digest, execution)


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


def _write_outputs(model, run, history, seconds, digest, execution):
    config, splits, path = run.config, run.splits, run.work_dir
    rundir.write_json(
        os.path.join(path, "history.json"),
        {
            "history": history,
            "seconds_this_session": seconds,
            "weights_sha256": digest,
            "execution": execution,
            "steps": config.steps,
            "steps_per_epoch": run.steps_per_epoch,
            "data_variance": model.data_variance,
            "config": dataclasses.asdict(config),
        },
    )
    figures.save_reconstructions(model, splits.x_eval, config, os.path.join(path, "reconstructions.png"))
    if hasattr(model.bottleneck, "assignment_probabilities"):  # the codebook quantizers
        figures.save_codebook_usage(model, splits.x_eval, config, history, os.path.join(path, "codebook.png"))
    with rundir.atomic_path(os.path.join(path, "autoencoder.keras")) as tmp:
        model.save(tmp)
    export_encoder(model, config, os.path.join(path, "encoder"))  # last: marks the run complete
