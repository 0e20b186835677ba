"""Score trained runs with the probes and build the paper-style table.

Latents come from each run's exported SavedModel encoder, on the train and
test splits of the run's data set. Each run's scores are cached in
``probes.json`` inside the run (keyed by the probe settings), so a repeated
evaluation or an interrupted reproduction does not redo finished work.
"""

import collections
import csv
import io
import json
import os
import time

import numpy as np

from softvq_tf import probes, rundir
from softvq_tf.config import RunConfig, identity_key, variant_label
from softvq_tf.data import load_splits, preprocess
from softvq_tf.errors import DataError, UsageError
from softvq_tf.export import load_encoder

MODEL_NAMES = {
    "raw": "Raw data",
    "ae": "Baseline Autoencoder",
    "vae": "VAE",
    "beta_vae": "beta-VAE",
    "info_dropout": "Information dropout",
    "vq": "VQ-VAE",
    "soft_vq": "Soft VQ-VAE",
}
# Paper, Tables 1 and 2: (clustering ACC %, NMI, classification %); None where not reported.
PAPER = {
    "mnist": {
        "raw": (55.17, 0.5008, 92.44), "ae": (52.61, 0.5301, 91.91), "vae": (56.44, 0.5600, 89.10),
        "beta_vae": (73.81, 0.5760, 91.10), "info_dropout": (58.52, 0.4979, 91.11),
        "vq": (51.48, 0.3541, 81.62), "soft_vq": (77.64, 0.7188, 93.54),
    },
    "svhn": {
        "ae": (11.96, None, 25.95), "vae": (13.58, None, 26.42), "beta_vae": (14.54, None, 49.62),
        "info_dropout": (12.75, None, 24.46), "vq": (12.96, None, 31.57), "soft_vq": (17.68, None, 50.48),
    },
    "cifar10": {
        "ae": (21.73, None, 40.92), "vae": (24.12, None, 38.83), "beta_vae": (22.80, None, 36.91),
        "info_dropout": (21.96, None, 39.89), "vq": (20.30, None, 33.51), "soft_vq": (23.83, None, 44.54),
    },
}


def score_latents(train_z, train_y, test_z, test_y, kmeans_inits=100, probe_epochs=30, seed=0, log=print):
    """All probes on one representation; returns a dict of scores and seconds.

    ``acc`` and ``nmi`` are the paper's statistic (the lowest-inertia k-means
    restart); ``acc_near_best`` and ``nmi_near_best`` average the restarts within
    ``probes.NEAR_BEST_MARGIN`` of it, and ``kmeans_restarts`` keeps every
    restart's inertia, ACC and NMI so other statistics can be computed later.
    """
    start = time.time()
    restarts = probes.kmeans_restarts(test_z, 10, kmeans_inits, seed, progress=lambda i, n: log(f"    k-means restarts {i}/{n}"))
    accs = np.array([100 * probes.clustering_accuracy(test_y, labels) for labels in restarts.labels])
    nmis = np.array([probes.nmi(test_y, labels) for labels in restarts.labels])
    near = restarts.near_best()
    log("    training the linear probe")
    cls = probes.linear_probe_accuracy(train_z, train_y, test_z, test_y, epochs=probe_epochs, seed=seed)
    log("    logistic regression and k-nearest neighbours")
    return {"acc": float(accs[restarts.best]), "nmi": float(nmis[restarts.best]), "cls": 100 * cls,
            "acc_near_best": float(accs[near].mean()), "nmi_near_best": float(nmis[near].mean()),
            "near_best_restarts": len(near), "acc_near_best_min": float(accs[near].min()),
            "acc_near_best_max": float(accs[near].max()),
            "cls_logreg": 100 * probes.logistic_regression_accuracy(train_z, train_y, test_z, test_y),
            "knn": 100 * probes.knn_accuracy(train_z, train_y, test_z, test_y),
            "inertia": float(restarts.inertias[restarts.best]), "seconds": time.time() - start,
            "kmeans_restarts": {"inertia": [float(f"{v:.7g}") for v in restarts.inertias],
                                "acc": [round(float(v), 4) for v in accs], "nmi": [round(float(v), 6) for v in nmis]}}


# Version of the probes' computation: a score made by another version is not reused.
# 2: k-means restarts one seeding each (per-restart scores kept), near-best statistics,
# logistic regression and k-NN beside the Keras linear probe.
PROBES_VERSION = 2


def probe_settings(kmeans_inits=100, probe_epochs=30):
    """What a stored score's probes depend on besides the latents."""
    return {"kmeans_inits": kmeans_inits, "probe_epochs": probe_epochs, "version": PROBES_VERSION}


def display_name(entry, common=""):
    """Model name for tables and figures, with its variant if any (less the settings ``common`` to every row)."""
    shared = set(filter(None, common.split(", ")))
    variant = ", ".join(v for v in (entry.get("variant") or "").split(", ") if v and v not in shared)
    return MODEL_NAMES[entry["model"]] + (f" ({variant})" if variant else "")


def common_variant(rows):
    """The variant settings every trained row shares (e.g. ``batch_size=64, steps=20000``), said once in a header."""
    sets = [set(filter(None, (r.get("variant") or "").split(", "))) for r in rows if r["model"] != "raw"]
    shared = set.intersection(*sets) if sets else set()
    return ", ".join(sorted(shared))


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


def evaluate_runs(run_dirs, kmeans_inits=100, probe_epochs=30, tsne=False, raw=True, log=print):
    """Probe every run (and the raw data of each data set); returns a list of row dicts."""
    if not run_dirs:
        raise UsageError("no trained runs found; train one with `python train.py` or pass --runs PATH")
    settings = probe_settings(kmeans_inits, probe_epochs)
    splits, rows, raw_done = SplitCache(), [], set()
    for run_dir in run_dirs:
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise UsageError(f"{run_dir} is not a run directory (no config.json)")
        if not rundir.is_complete(run_dir):
            raise UsageError(f"run {run_dir} has no exported encoder (unfinished?); finish it by running its train.py command again")
        config = RunConfig.load(run_dir)
        data = splits.get(config)
        if raw and _data_key(config) not in raw_done:
            raw_done.add(_data_key(config))
            rows.append(score_raw(config, data, settings, log))
        rows.append(score_run(run_dir, config, data, settings, tsne, log))
    return rows


def score_raw(config, data, settings, log=print):
    """The probes on raw pixels of ``config``'s data (the table's first row)."""
    log(f"{config.dataset}: raw data")
    flat = lambda x: preprocess(x, config.pixel_max, config.pixel_offset).numpy().reshape(len(x), -1)  # noqa: E731
    scores = score_latents(flat(data.x_train), data.y_train, flat(data.x_test), data.y_test,
                           settings["kmeans_inits"], settings["probe_epochs"], log=log)
    return {"dataset": config.dataset, "model": "raw", "variant": "", "identity": "raw", "K": None,
            "d": int(np.prod(config.image_shape)), "seed": None, "run": None, **scores}


def training_summary(run_dir, config):
    """The last epoch's training metrics of a finished run, and its training time.

    ``reconstruction_nmse`` is the normalised MSE without the VAE family's
    input-size factor, comparable across all six bottlenecks.
    """
    history = rundir.read_json(os.path.join(run_dir, "history.json"))
    last = {k: v[-1] for k, v in history["history"].items() if v}
    summary = {k: last.get(k) for k in ("reconstruction_loss", "bottleneck_loss", "perplexity", "codewords_in_use")}
    nmse = None if summary["reconstruction_loss"] is None else summary["reconstruction_loss"] / config.reconstruction_scale
    restarts = history["history"].get("dead_code_restarts")
    return {**summary, "reconstruction_nmse": nmse, "train_seconds": history.get("seconds_this_session"),
            "dead_code_restarts": None if restarts is None else float(sum(restarts))}


def score_run(run_dir, config, data, settings, tsne=False, log=print):
    """Probe one finished run's exported encoder; cached in the run's ``probes.json``."""
    cache_path = os.path.join(run_dir, "probes.json")
    if os.path.exists(cache_path):
        cached = rundir.read_json(cache_path)
        if cached.get("settings") == settings and cached["row"].get("identity") == identity_key(config) and not tsne:
            log(f"{config.dataset}: {config.name} (cached)")
            return cached["row"]
    log(f"{config.dataset}: {config.name}")
    encode = load_encoder(os.path.join(run_dir, "encoder"))
    train_z, test_z = encode(data.x_train), encode(data.x_test)
    scores = score_latents(train_z, data.y_train, test_z, data.y_test, settings["kmeans_inits"], settings["probe_epochs"], log=log)
    row = {"dataset": config.dataset, "model": config.bottleneck, "variant": variant_label(config),
           "identity": identity_key(config), "K": config.num_codewords, "d": config.latent_dim, "seed": config.seed,
           "run": config.name, **scores, **training_summary(run_dir, config)}
    if tsne:
        probes.save_tsne(test_z, data.y_test, os.path.join(run_dir, "tsne.png"), f"{config.dataset} {config.bottleneck}")
    rundir.write_json(cache_path, {"settings": settings, "row": row})
    return row


SUMMARY_METRICS = ("acc", "nmi", "cls", "seconds", "train_seconds", "perplexity", "codewords_in_use", "reconstruction_nmse",
                   "dead_code_restarts")


def summarize(rows, group_by="identity"):
    """Group rows of one identity (they differ only by seed): mean and std of each metric.

    The paper's figure is attached only to rows trained with exactly the
    paper's settings (no variant): a row with another budget is not the
    paper's experiment.
    """
    groups = collections.OrderedDict()
    for row in rows:
        groups.setdefault((row["dataset"], row[group_by]), []).append(row)
    order = list(MODEL_NAMES)
    table = []
    for (dataset, _), members in groups.items():
        first = members[0]
        entry = {k: first.get(k) for k in ("dataset", "model", "variant", "identity", "K", "d")}
        entry.update(n=len(members), seeds=[m.get("seed") for m in members])
        if group_by != "identity":
            entry[group_by] = first[group_by]
        for metric in SUMMARY_METRICS:
            values = np.array([m[metric] for m in members if m.get(metric) is not None], float)
            entry[metric] = float(values.mean()) if len(values) else None
            entry[metric + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        entry["paper"] = _paper_row(dataset, first["model"]) if not first.get("variant") else None
        table.append(entry)
    return sorted(table, key=lambda e: (e["dataset"], order.index(e["model"]), e.get("variant") or ""))


def _paper_row(dataset, model):
    if dataset not in PAPER or model not in PAPER[dataset]:
        return None
    return dict(zip(("acc", "nmi", "cls"), PAPER[dataset][model]))


def _fmt(value, std, digits):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def to_markdown(table, common=""):
    """The paper-style table: mean ± std over seeds, the paper's figure where the settings are the paper's."""
    lines = ["| data set | model | K | d | seeds | clustering ACC (%) | NMI | classification (%) | paper ACC (%) / NMI / cls (%) "
             "| codebook perplexity | codewords in use | probe time (s) | training time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        p = e["paper"]
        paper = " / ".join("-" if p[m] is None else f"{p[m]:g}" for m in ("acc", "nmi", "cls")) if p else "-"
        lines.append(
            f"| {e['dataset']} | {display_name(e, common)} | {e['K'] or '-'} | {e['d']} | {e['n'] if e['model'] != 'raw' else '-'} | "
            f"{_fmt(e['acc'], e['acc_std'], 2)} | {_fmt(e['nmi'], e['nmi_std'], 4)} | {_fmt(e['cls'], e['cls_std'], 2)} | "
            f"{paper} | {_fmt(e.get('perplexity'), e.get('perplexity_std'), 1)} | "
            f"{_fmt(e.get('codewords_in_use'), e.get('codewords_in_use_std'), 1)} | {_fmt(e['seconds'], None, 0)} | "
            f"{_fmt(e.get('train_seconds'), None, 0)} |"
        )
    return "\n".join(lines) + "\n"


def runs_markdown(rows, common=""):
    """One line per run (every seed), for the spread behind each mean."""
    lines = ["| model | seed | clustering ACC (%) | NMI | classification (%) | codebook perplexity | codewords in use "
             "| reconstruction (normalised MSE) | run |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["model"] == "raw":
            continue
        lines.append(f"| {display_name(r, common)} | {r['seed']} | {r['acc']:.2f} | {r['nmi']:.4f} | {r['cls']:.2f} | "
                     f"{_fmt(r.get('perplexity'), None, 1)} | {_fmt(r.get('codewords_in_use'), None, 0)} | "
                     f"{_fmt(r.get('reconstruction_nmse'), None, 4)} | {r['run']} |")
    return "\n".join(lines) + "\n"


def to_csv(table):
    buffer = io.StringIO()
    fields = ["dataset", "model", "variant", "K", "d", "n", "acc", "acc_std", "nmi", "nmi_std", "cls", "cls_std",
              "perplexity", "codewords_in_use", "seconds", "train_seconds", "paper_acc", "paper_nmi", "paper_cls"]
    writer = csv.DictWriter(buffer, fields)
    writer.writeheader()
    for e in table:
        p = e["paper"] or {}
        writer.writerow({**{f: e.get(f) for f in fields}, "paper_acc": p.get("acc"), "paper_nmi": p.get("nmi"), "paper_cls": p.get("cls")})
    return buffer.getvalue()


def write_tables(table, rows, stem, header=""):
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` (each atomically)."""
    common = common_variant(rows)
    settings = f"Settings of every run beyond the data set's preset: {common}.\n\n" if common else ""
    rundir.write_atomic(stem + ".md", header + settings + to_markdown(table, common) + "\nEvery run:\n\n" + runs_markdown(rows, common))
    rundir.write_atomic(stem + ".csv", to_csv(table))
    rundir.write_atomic(stem + ".json", json.dumps({"table": table, "runs": rows}, indent=2, default=float) + "\n")
