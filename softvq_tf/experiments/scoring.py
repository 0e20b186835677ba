"""One row of scores per run (and per data set's raw pixels): the probes, the training summary.

Latents come from each run's exported SavedModel encoder, on the run's
training images and its evaluation split (the test split, or a validation
split held out of train). Rows are kept in the score store (``plan.ScoreStore``).
"""

import os
import time

import keras
import numpy as np

from softvq_tf import models  # noqa: F401 (registers the Autoencoder for code_latents' load_model)
from softvq_tf.experiments import probes
from softvq_tf.experiments.tokens import token_scores
from softvq_tf.layers import registry
from softvq_tf.training import rundir
from softvq_tf.training.config import identity_key, variant_label
from softvq_tf.training.data import load_splits, preprocess
from softvq_tf.training.errors import DataError
from softvq_tf.training.export import load_encoder


def grid_views(z):
    """A grid of codes ``[N, H, W, d]`` as the probes read it: ``(flattened [N, H*W*d], pooled over positions
    [N, d])``; one code per image ``[N, d]`` is both."""
    z = np.asarray(z)
    if z.ndim == 2:
        return z, z
    return z.reshape(len(z), -1), z.reshape(len(z), -1, z.shape[-1]).mean(axis=1)


def score_latents(train_z, train_y, test_z, test_y, kmeans_inits=100, probe_epochs=30, seed=0, log=print):
    """All probes on one representation; returns a dict of scores and seconds.

    A grid of codes is read as ``grid_views`` gives it: k-means clusters the
    codes pooled over positions; the linear probe, logistic regression and
    k-NN read the flattened grid.

    ``acc`` and ``nmi`` are the paper's statistic (the lowest-inertia k-means
    restart); ``acc_near_best`` and ``nmi_near_best`` average the restarts within
    ``probes.NEAR_BEST_MARGIN`` of it, and ``kmeans_restarts`` keeps every
    restart's inertia, ACC and NMI so other statistics can be computed later.
    """
    start = time.time()
    (train_z, _), (test_z, test_pooled) = grid_views(train_z), grid_views(test_z)
    restarts = probes.kmeans_restarts(
        test_pooled, 10, kmeans_inits, seed, progress=lambda i, n: log(f"    k-means restarts {i}/{n}")
    )
    accs = np.array([100 * probes.clustering_accuracy(test_y, labels) for labels in restarts.labels])
    nmis = np.array([probes.nmi(test_y, labels) for labels in restarts.labels])
    near = restarts.near_best()
    log("    training the linear probe")
    cls = probes.linear_probe_accuracy(train_z, train_y, test_z, test_y, epochs=probe_epochs, seed=seed)
    log("    logistic regression and k-nearest neighbours")
    return {
        "acc": float(accs[restarts.best]),
        "nmi": float(nmis[restarts.best]),
        "cls": 100 * cls,
        "acc_near_best": float(accs[near].mean()),
        "nmi_near_best": float(nmis[near].mean()),
        "near_best_restarts": len(near),
        "acc_near_best_min": float(accs[near].min()),
        "acc_near_best_max": float(accs[near].max()),
        "cls_logreg": 100 * probes.logistic_regression_accuracy(train_z, train_y, test_z, test_y),
        "knn": 100 * probes.knn_accuracy(train_z, train_y, test_z, test_y),
        "inertia": float(restarts.inertias[restarts.best]),
        "seconds": time.time() - start,
        "kmeans_restarts": {
            "inertia": [float(f"{v:.7g}") for v in restarts.inertias],
            "acc": [round(float(v), 4) for v in accs],
            "nmi": [round(float(v), 6) for v in nmis],
        },
    }


# Version of the probes' computation: a score made by another version is not reused.
# 2: k-means restarts one seeding each (per-restart scores kept), near-best statistics,
# logistic regression and k-NN beside the Keras linear probe.
PROBES_VERSION = 2


def probe_settings(kmeans_inits=100, probe_epochs=30):
    """What a stored score's probes depend on besides the latents."""
    return {"kmeans_inits": kmeans_inits, "probe_epochs": probe_epochs, "version": PROBES_VERSION}


def run_probe_settings(config, settings):
    """``settings`` of one run: a run whose own code is probed as well (``code_latents``) says so, so that
    older scores are redone."""
    code = registry.get(config.bottleneck).code_probed
    return {**settings, "code": code} if code else settings


def _data_key(config):
    return (config.dataset, config.data_dir, config.validation_split)


class SplitCache:
    """Loads each data set once."""

    def __init__(self):
        self._cache = {}

    def get(self, config):
        key = _data_key(config)
        if key not in self._cache:
            try:
                self._cache[key] = load_splits(config.dataset, config.data_dir, config.validation_split)
            except DataError as error:
                raise DataError(f"cannot load the data of run {config.run_dir}: {error}") from None
        return self._cache[key]


def score_raw(config, data, settings, log=print):
    """The probes on raw pixels of ``config``'s data (the table's first row)."""
    log(f"{config.dataset}: raw data")
    flat = lambda x: preprocess(x, config.pixel_max, config.pixel_offset).numpy().reshape(len(x), -1)  # noqa: E731
    scores = score_latents(
        flat(data.x_train),
        data.y_train,
        flat(data.x_eval),
        data.y_eval,
        settings["kmeans_inits"],
        settings["probe_epochs"],
        log=log,
    )
    return {
        "dataset": config.dataset,
        "model": "raw",
        "variant": "",
        "identity_key": "raw",
        "K": None,
        "d": int(np.prod(config.image_shape)),
        "seed": None,
        "run": None,
        **scores,
    }


def training_summary(run_dir, config):
    """The last epoch's training metrics of a finished run, and its training time.

    ``reconstruction_nmse`` is the normalised MSE without the VAE family's
    input-size factor, comparable across all six bottlenecks.
    """
    history = rundir.read_json(os.path.join(run_dir, "history.json"))
    last = {k: v[-1] for k, v in history["history"].items() if v}
    summary = {k: last.get(k) for k in ("reconstruction_loss", "bottleneck_loss", "perplexity", "codewords_in_use")}
    nmse = (
        None if summary["reconstruction_loss"] is None else summary["reconstruction_loss"] / config.reconstruction_scale
    )
    restarts = history["history"].get("dead_code_restarts")
    return {
        **summary,
        "reconstruction_nmse": nmse,
        "train_seconds": history.get("seconds_this_session"),
        "dead_code_restarts": None if restarts is None else float(sum(restarts)),
    }


def _load_saved(run_dir, name, load):
    """``load(run_dir/name)``; a missing or damaged file is one line that says how to redo the run."""
    path = os.path.join(run_dir, name)
    try:
        return load(path)
    except Exception as error:  # Keras and TensorFlow raise many kinds for one damaged file
        raise DataError(
            f"{path} is missing or damaged ({type(error).__name__}); delete {run_dir} and run the command "
            "again to retrain it"
        ) from None


def run_encoder(run_dir):
    """A finished run's exported encoder: ``uint8 images -> z_e`` (``export.load_encoder``)."""
    return _load_saved(run_dir, "encoder", load_encoder)


def latents(run_dir, images):
    """``z_e [N, d]`` of ``images`` from a finished run's exported encoder."""
    return run_encoder(run_dir)(images)


def code_latents(run_dir, *z_e):
    """The bottleneck's own code of each ``z_e`` array (FSQ's ``code``), from the run's saved autoencoder."""
    model = _load_saved(run_dir, "autoencoder.keras", lambda path: keras.saving.load_model(path, compile=False))
    return [model.bottleneck.code(z).numpy() for z in z_e]


def score_run(run_dir, config, data, settings, log=print):
    """Probe one finished run's exported encoder; returns its row (scores and training summary).

    For a bottleneck in ``CODE_PROBED`` the row's ``code`` holds the same
    probes of its own code (``code_latents``).
    """
    log(f"{config.dataset}: {config.name}")
    encode = run_encoder(run_dir)
    train_z, test_z = encode(data.x_train), encode(data.x_eval)
    probe = lambda train, test: score_latents(  # noqa: E731
        train, data.y_train, test, data.y_eval, settings["kmeans_inits"], settings["probe_epochs"], log=log
    )
    scores = probe(train_z, test_z)
    if config.network == "conv_grid":  # an image tokenizer: its reconstructions and its tokens
        model = _load_saved(run_dir, "autoencoder.keras", lambda path: keras.saving.load_model(path, compile=False))
        scores.update(token_scores(model, config, data.x_eval))
    code = registry.get(config.bottleneck).code_probed
    if code:
        log(f"    probing {code}")
        scores["code"] = probe(*code_latents(run_dir, train_z, test_z))
    return {
        "dataset": config.dataset,
        "model": config.bottleneck,
        "variant": variant_label(config),
        "identity_key": identity_key(config),
        "K": config.num_codewords,
        "d": config.latent_dim,
        "seed": config.seed,
        "run": config.name,
        **scores,
        **training_summary(run_dir, config),
    }


CODE_LABEL = "probed on its code"


def code_row_name(name):
    """The name of the row that probes ``name``'s own code: ``"fsq"`` -> ``"fsq (probed on its code)"``."""
    return f"{name} ({CODE_LABEL})"


def with_code_rows(rows):
    """``rows`` with, after each row that has ``code`` scores, that probe as a row of its own.

    The extra row is the same run (its training summary, seed, path) with the
    probes of its own code; its variant ends in ``CODE_LABEL`` and its
    identity key in ``|code``, so tables group and compare it like a model.
    """
    out = []
    for row in rows:
        code = row.get("code")
        plain = {k: v for k, v in row.items() if k != "code"}
        out.append(plain)
        if code:
            variant = ", ".join(filter(None, (row.get("variant"), CODE_LABEL)))
            extra = {"variant": variant, "identity_key": f"{row['identity_key']}|code"}
            if "variant_name" in row:  # a sweep's label
                extra["variant_name"] = code_row_name(row["variant_name"])
            out.append({**plain, **code, **extra})
    return out
