"""One row of scores per run (and per data set's raw pixels): the probes, the training summary.

Latents come from each run's exported SavedModel encoder, on the run's
training images and its evaluation split (the test split, or a validation
split held out of train). Rows are kept in the score store (``plan.ScoreStore``).
"""

import contextlib
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


class ProbeClock:
    """Seconds per probe of one run, kept in its scores (``probe_seconds``) and printed in one line."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def time(self, probe):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[probe] = round(self.seconds.get(probe, 0.0) + time.perf_counter() - start, 2)


# The probes' names in the one line per run, in the order they run.
PROBE_LABELS = {
    "encode": "encoding",
    "kmeans": "k-means",
    "linear_probe": "linear probe",
    "logreg": "logistic regression",
    "knn": "10-NN",
    "tokens": "tokens",
}


def probe_summary(scores, probe_epochs=30):
    """One line: each probe's seconds, and whether each probe with a tolerance converged (the linear probe has
    none: it trains its ``probe_epochs``)."""
    seconds = scores.get("probe_seconds", {})
    timing = ", ".join(f"{label} {seconds[probe]:.1f}" for probe, label in PROBE_LABELS.items() if probe in seconds)
    converged = scores.get("probes_converged", {})
    state = "; ".join(
        f"{PROBE_LABELS[probe]} {'converged' if ok else 'DID NOT CONVERGE'}" for probe, ok in converged.items()
    )
    return (
        f"    probe seconds: {timing} (total {sum(seconds.values()):.1f}); {state}; "
        f"the linear probe trains {probe_epochs} epochs"
    )


def score_latents(
    train_z,
    train_y,
    test_z,
    test_y,
    kmeans_inits=100,
    probe_epochs=30,
    seed=0,
    log=print,
    grid_extras=False,
    clock=None,
):
    """All probes on one representation; returns a dict of scores, seconds and convergence.

    A grid of codes is read as ``grid_views`` gives it: k-means clusters the
    codes pooled over positions; the linear probe reads the flattened grid.
    The logistic regression and the 10-NN, which need a flat code to be cheap
    (on a 7 x 7 x 64 grid the converged regression takes some 1,200 L-BFGS
    iterations, and the 10-NN 3.8 TFLOP), run on flat codes, and on a grid's
    flattened grid only with ``grid_extras``.

    ``acc`` and ``nmi`` are the paper's statistic (the lowest-inertia k-means
    restart); ``acc_near_best`` and ``nmi_near_best`` average the restarts within
    ``probes.NEAR_BEST_MARGIN`` of it, and ``kmeans_restarts`` keeps every
    restart's inertia, ACC and NMI so other statistics can be computed later.
    ``probes_converged`` says, for each probe with a tolerance, whether it met it;
    ``probe_seconds`` holds each probe's time.
    """
    clock = clock or ProbeClock()
    start = time.time()
    grid = np.ndim(train_z) > 2
    (train_z, _), (test_z, test_pooled) = grid_views(train_z), grid_views(test_z)
    with clock.time("kmeans"):
        restarts = probes.kmeans_restarts(
            test_pooled, 10, kmeans_inits, seed, progress=lambda i, n: log(f"    k-means restarts {i}/{n}")
        )
        accs = np.array([100 * probes.clustering_accuracy(test_y, labels) for labels in restarts.labels])
        nmis = np.array([probes.nmi(test_y, labels) for labels in restarts.labels])
    near = restarts.near_best()
    log("    training the linear probe")
    with clock.time("linear_probe"):
        cls = probes.linear_probe_accuracy(train_z, train_y, test_z, test_y, epochs=probe_epochs, seed=seed)
    scores = {
        "acc": float(accs[restarts.best]),
        "nmi": float(nmis[restarts.best]),
        "cls": 100 * cls,
        "acc_near_best": float(accs[near].mean()),
        "nmi_near_best": float(nmis[near].mean()),
        "near_best_restarts": len(near),
        "acc_near_best_min": float(accs[near].min()),
        "acc_near_best_max": float(accs[near].max()),
    }
    converged = {"kmeans": restarts.converged}
    if not grid or grid_extras:
        log("    logistic regression and k-nearest neighbours")
        with clock.time("logreg"):
            logreg = probes.logistic_regression(train_z, train_y, test_z, test_y)
        with clock.time("knn"):
            scores["knn"] = 100 * probes.knn_accuracy(train_z, train_y, test_z, test_y)
        scores.update(cls_logreg=100 * logreg.accuracy, logreg_iterations=logreg.iterations)
        converged["logreg"] = logreg.converged
    return {
        **scores,
        "inertia": float(restarts.inertias[restarts.best]),
        "seconds": time.time() - start,
        "probes_converged": converged,
        "probe_seconds": dict(clock.seconds),
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


def probe_settings(kmeans_inits=100, probe_epochs=30, grid_extras=False):
    """What a stored score's probes depend on besides the latents (``grid_extras`` only when set, so that the
    scores stored before it existed, which are the default's, stay reusable)."""
    settings = {"kmeans_inits": kmeans_inits, "probe_epochs": probe_epochs, "version": PROBES_VERSION}
    return {**settings, "grid_extras": True} if grid_extras else settings


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
    log(probe_summary(scores, settings["probe_epochs"]))
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
    clock = ProbeClock()
    with clock.time("encode"):
        encode = run_encoder(run_dir)
        train_z, test_z = encode(data.x_train), encode(data.x_eval)
    extras = settings.get("grid_extras", False)
    probe = lambda train, test, clock=clock: score_latents(  # noqa: E731
        train,
        data.y_train,
        test,
        data.y_eval,
        settings["kmeans_inits"],
        settings["probe_epochs"],
        log=log,
        grid_extras=extras,
        clock=clock,
    )
    scores = probe(train_z, test_z)
    if config.network == "conv_grid":  # an image tokenizer: its reconstructions and its tokens
        with clock.time("tokens"):
            model = _load_saved(run_dir, "autoencoder.keras", lambda path: keras.saving.load_model(path, compile=False))
            scores.update(token_scores(model, config, data.x_eval))
        scores["probe_seconds"] = dict(clock.seconds)
    log(probe_summary(scores, settings["probe_epochs"]))
    code = registry.get(config.bottleneck).code_probed
    if code:
        log(f"    probing {code}")
        scores["code"] = probe(*code_latents(run_dir, train_z, test_z), clock=ProbeClock())
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
