"""Runs carried through to scores, with one store of scores: plan -> skip what is scored -> train -> score.

``reproduce`` and ``sweep`` call ``run_plan``; ``evaluate`` calls
``score_runs``. Both keep each run's scores in a ``ScoreStore``,
``SCORES/DATASET/RUN_NAME.json`` (``results/scores`` is committed), so an
experiment interrupted on one machine continues on another without
retraining or rescoring what was done.

A stored score records the run's identity, seed, probe settings, final
weights digest and execution path (``training.strategy.execution_path``). Before
training, it is reused only where retraining with this code would give the
same weights: the same identity, seed and probe settings, a recorded digest,
and the execution path this machine would take for the run. After training,
it is reused only for the very weights it scored (the same digest). Identity
stays "what the run computes", which groups seeds in tables; the path is kept
out of it, so XLA and non-XLA runs of one setting still average together, but
a score is never reused across paths. A run directory that holds another
identity is refused, never reused.
"""

import os
import time

import keras

from softvq_tf.experiments import probes, scoring
from softvq_tf.training import rundir
from softvq_tf.training.config import RunConfig, identity_changes, run_identity
from softvq_tf.training.errors import UsageError
from softvq_tf.training.fit import train
from softvq_tf.training.rundir import RunLock
from softvq_tf.training.strategy import planned_execution


def reusable(stored, identity, seed, settings, execution=None, digest=None, any_cpu=False):
    """Whether a stored record stands for this run (see the module docstring).

    ``execution``: the path training would take (None for the raw data, which is not trained).
    ``digest``: the weights of a finished run (the stored score must be of these weights).
    ``any_cpu``: accept a score made on the same path on another CPU's instruction set (``--any-cpu``).
    """
    same = stored.get("identity") == identity and stored.get("seed") == seed
    same = same and stored.get("probe_settings") == settings
    if digest is not None:
        return same and stored.get("weights_sha256") == digest
    if execution is not None:
        path = stored.get("execution") or {}
        if any_cpu:
            path, execution = _without_cpu(path), _without_cpu(execution)
        return same and bool(stored.get("weights_sha256")) and path == execution
    return same


def _without_cpu(execution):
    return {k: v for k, v in execution.items() if k != "cpu_features"}


def path_label(execution):
    """A short name of the path that made a stored score, for the every-run tables: "XLA, AVX-512"."""
    if not execution:
        return "-"
    label = "XLA" if execution.get("xla") else "no XLA"
    if execution.get("replicas", 1) != 1:
        label += f", {execution['replicas']} replicas"
    cpu = execution.get("cpu_features")
    if cpu is None:
        return label + (" (inferred)" if execution.get("inferred_from") else "")
    return label + (", AVX-512" if "avx512f" in cpu.split() else ", AVX2" if "avx2" in cpu.split() else f", {cpu}")


class ScoreStore:
    """Per-run score records under ``root/DATASET/``: ``RUN_NAME.json``, and ``raw[_valF].json`` for raw pixels."""

    def __init__(self, root):
        self.root = root

    def path(self, config):
        return os.path.join(self.root, config.dataset, config.name + ".json")

    def raw_path(self, config):
        split = f"_val{config.validation_split:g}" if config.validation_split else ""
        return os.path.join(self.root, config.dataset, f"raw{split}.json")

    @staticmethod
    def _read(path):
        return rundir.read_json(path) if os.path.exists(path) else None

    def lookup(self, config, settings, execution=None, digest=None, any_cpu=False, any_path=False):
        """The stored row of ``config``'s run if ``reusable``, else None; the row names its path (``path``).

        ``any_path``: any score of this identity, seed and probe settings, whatever made it (tables of what
        is stored, which show each run's path).
        """
        stored = self._read(self.path(config))
        if stored is None:
            return None
        execution = None if any_path else execution or {}
        settings = scoring.run_probe_settings(config, settings)
        if reusable(stored, run_identity(config), config.seed, settings, execution, digest, any_cpu):
            return {**stored["row"], "path": path_label(stored.get("execution"))}
        return None

    def put(self, config, settings, row, digest, execution):
        settings = scoring.run_probe_settings(config, settings)
        record = {"identity": run_identity(config), "seed": config.seed, "probe_settings": settings, "row": row}
        record.update(weights_sha256=digest, execution=execution)
        self._write(self.path(config), record)

    def raw_row(self, config, data, settings, log=print):
        """The raw-pixel row of ``config``'s data set: stored, or probed now and stored.

        Probed under a lock on the store's data-set folder, so two commands sharing a store probe it once
        and both report the same row.
        """
        identity = {"dataset": config.dataset, "validation_split": config.validation_split}
        lock = RunLock(os.path.dirname(self.raw_path(config)))
        lock.acquire(blocking=True)
        try:
            stored = self._read(self.raw_path(config))
            if stored and reusable(stored, identity, None, settings):
                return stored["row"]
            row = scoring.score_raw(config, data, settings, log)
            record = {"identity": identity, "seed": None, "probe_settings": settings, "row": row}
            self._write(self.raw_path(config), record)
            return row
        finally:
            lock.release()

    @staticmethod
    def _write(path, record):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rundir.write_json(path, record)


def _raw_rows_first(configs, store, splits, settings, raw, log):
    """``(config, raw row or None)``: the raw row comes with the first config of each data set and split."""
    seen = set()
    for config in configs:
        key = (config.dataset, config.validation_split)
        first = raw and key not in seen
        seen.add(key)
        yield config, store.raw_row(config, splits.get(config), settings, log) if first else None


def _check_run_dir(config):
    """A finished run directory must hold this very run (same identity and seed)."""
    stored = RunConfig.load(config.run_dir)
    changed = identity_changes(stored, config) + (["seed"] if stored.seed != config.seed else [])
    if changed:
        raise UsageError(
            f"{config.run_dir} holds a run with other settings ({', '.join(changed)}); "
            "move it away or choose another runs folder"
        )


def _score_finished_run(config, store, data, settings, tsne=False, log=print):
    """Probe a finished run directory (or reuse its stored score for the same weights) and store the row."""
    history = rundir.read_json(os.path.join(config.run_dir, "history.json"))
    digest, execution = history.get("weights_sha256"), history.get("execution") or {}
    row = None if tsne else store.lookup(config, settings, digest=digest or "no digest recorded")
    if row is not None:
        log(f"{config.dataset}: {config.name} (scored before)")
        return row
    row = scoring.score_run(config.run_dir, config, data, settings, log=log)
    if tsne:
        latents = scoring.latents(config.run_dir, data.x_eval)
        probes.save_tsne(latents, data.y_eval, os.path.join(config.run_dir, "tsne.png"), config.name)
    store.put(config, settings, row, digest, execution)
    return {**row, "path": path_label(execution)}


def _train_and_score(config, store, data, settings, log, announce=lambda: None):
    """Finish ``config``'s run (train it, after ``announce()``, unless its folder is complete) and score it.

    Returns ``(row, whether it was trained here)``. The caller holds the run's lock.
    """
    trained = not rundir.is_complete(config.run_dir)
    if trained:
        announce()
        keras.backend.clear_session()
        train(config, verbose=2, log=log)
    else:
        _check_run_dir(config)
    return _score_finished_run(config, store, data, settings, log=log), trained


def run_plan(
    configs,
    scores_dir,
    kmeans_inits=100,
    probe_epochs=30,
    raw=True,
    on_row=None,
    log=print,
    train_missing=True,
    any_cpu=False,
    grid_extras=False,
):
    """Train and score every config not scored yet; returns the rows (raw data first per data set).

    ``on_row(rows)`` is called with the rows so far after each newly scored
    run, so a caller can rewrite its tables as results come in. With
    ``train_missing=False`` only the stored scores are used, whatever path
    made them (a table of the runs finished so far; each row names its path).
    ``any_cpu`` reuses scores made on another CPU's instruction set.
    """
    store, settings = ScoreStore(scores_dir), scoring.probe_settings(kmeans_inits, probe_epochs, grid_extras)
    splits, rows = scoring.SplitCache(), []
    stored = [
        store.lookup(c, settings, execution=planned_execution(c), any_cpu=any_cpu, any_path=not train_missing)
        for c in configs
    ]
    todo = [c for c, row in zip(configs, stored) if row is None]
    log(f"{len(configs)} runs planned, {len(configs) - len(todo)} already scored in {scores_dir}")
    start, trained, held = time.time(), 0, []
    for (config, raw_row), row in zip(_raw_rows_first(configs, store, splits, settings, raw, log), stored):
        if raw_row is not None:
            rows.append(raw_row)
        if row is not None:
            rows.append(row)
            continue
        if not train_missing:
            continue
        lock = RunLock(config.run_dir)
        if not lock.acquire():  # another command trains it: go on with the rest, take its score at the end
            log(f"{config.name}: being trained by {lock.holder()}; going on with the other runs")
            held.append((len(rows), config))
            continue

        def announce(config=config):
            position = todo.index(config) + 1
            left = (time.time() - start) / trained * (len(todo) - position + 1) / 60 if trained else None
            eta = f", about {left:.0f} min left" if left is not None else ""
            log(f"[{position}/{len(todo)}] {config.name}: {config.steps} steps{eta}")

        try:
            row, was_trained = _train_and_score(config, store, splits.get(config), settings, log, announce)
            trained += was_trained
            rows.append(row)
        finally:
            lock.release()
        if on_row:
            on_row(rows)
    for position, config in reversed(held):
        rows.insert(position, _wait_for(config, store, splits, settings, log))
    if held and on_row:
        on_row(rows)
    return rows


def _wait_for(config, store, splits, settings, log):
    """The row of a run another command held: wait for its lock, then take its stored score (or finish it)."""
    lock = RunLock(config.run_dir)
    log(f"{config.name}: waiting for {lock.holder()} to finish it")
    lock.acquire(blocking=True)
    try:
        row = store.lookup(config, settings, execution=planned_execution(config))
        if row is not None:
            return row
        # Its trainer died: finish it here (it resumes from its backup) and score it.
        return _train_and_score(config, store, splits.get(config), settings, log)[0]
    finally:
        lock.release()


def score_runs(
    run_dirs, scores_dir, kmeans_inits=100, probe_epochs=30, tsne=False, raw=True, log=print, grid_extras=False
):
    """Probe finished run directories (and the raw data of each data set); returns the rows."""
    if not run_dirs:
        raise UsageError("no trained runs found; train one with `python train.py` or pass --runs PATH")
    configs = []
    for run_dir in run_dirs:
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise UsageError(f"{run_dir} is not a run directory (no config.json)")
        if not rundir.is_complete(run_dir):
            raise UsageError(
                f"run {run_dir} has no exported encoder (unfinished?); finish it by running its train.py command again"
            )
        config = RunConfig.load(run_dir)
        config.out, config.name = os.path.dirname(run_dir) or ".", os.path.basename(os.path.normpath(run_dir))
        configs.append(config)
    store, settings = ScoreStore(scores_dir), scoring.probe_settings(kmeans_inits, probe_epochs, grid_extras)
    splits, rows = scoring.SplitCache(), []
    for config, raw_row in _raw_rows_first(configs, store, splits, settings, raw, log):
        if raw_row is not None:
            rows.append(raw_row)
        rows.append(_score_finished_run(config, store, splits.get(config), settings, tsne, log))
    return rows
