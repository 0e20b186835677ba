"""A set of runs carried through to scores: plan -> skip what is scored -> train what is missing -> score.

``reproduce`` and ``sweep`` are thin shells over ``run_plan``. Each finished
run's scores go into the score store, ``SCORES/DATASET/RUN_NAME.json``
(``results/scores`` is committed), so an experiment interrupted on one machine
continues on another without retraining what was already scored.

A stored score records the run's identity, seed, probe settings, final
weights digest and execution path (``training.execution_path``). It is reused
only where retraining with this code would give the same weights: the same
identity, seed and probe settings, a recorded digest, and the execution path
this machine would take for the run. Identity stays "what the run computes"
(it groups seeds in tables); the path is kept out of it, so XLA and non-XLA
runs of one setting are still averaged together, but a score is never reused
across paths. A run directory holding another identity is refused, never reused.
"""

import os
import time

from softvq_tf import evaluation, rundir
from softvq_tf.config import RunConfig, identity_changes, run_identity
from softvq_tf.errors import UsageError


def score_path(scores_dir, config):
    return os.path.join(scores_dir, config.dataset, config.name + ".json")


def raw_score_path(scores_dir, config):
    split = f"_val{config.validation_split:g}" if config.validation_split else ""
    return os.path.join(scores_dir, config.dataset, f"raw{split}.json")


def reusable(stored, identity, seed, settings, execution):
    """Whether a stored score stands for this run as this code would train it (see the module docstring)."""
    return (stored.get("identity") == identity and stored.get("seed") == seed
            and stored.get("probe_settings") == settings
            and (execution is None or (stored.get("weights_sha256") and stored.get("execution") == execution)))


def _stored(path, identity, seed, settings, execution=None):
    """The stored row at ``path`` if ``reusable``; ``execution`` None for the raw data (no training)."""
    if not os.path.exists(path):
        return None
    stored = rundir.read_json(path)
    return stored["row"] if reusable(stored, identity, seed, settings, execution) else None


def _store(path, identity, seed, settings, row, digest=None, execution=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {"identity": identity, "seed": seed, "probe_settings": settings, "row": row}
    if execution is not None:
        record.update(weights_sha256=digest, execution=execution)
    rundir.write_json(path, record)


def _check_run_dir(config):
    """A finished run directory must hold this very run (same identity and seed)."""
    stored = RunConfig.load(config.run_dir)
    changed = identity_changes(stored, config) + (["seed"] if stored.seed != config.seed else [])
    if changed:
        raise UsageError(f"{config.run_dir} holds a run with other settings ({', '.join(changed)}); move it away or choose another runs folder")


def run_plan(configs, scores_dir, kmeans_inits=100, probe_epochs=30, raw=True, on_row=None, log=print):
    """Train and score every config not scored yet; returns the rows (raw data first per data set).

    ``on_row(rows)`` is called with the rows so far after each newly scored
    run, so a caller can rewrite its tables as results come in.
    """
    import keras

    from softvq_tf.training import planned_execution, train

    settings = evaluation.probe_settings(kmeans_inits, probe_epochs)
    splits, rows, raw_done = evaluation.SplitCache(), [], set()
    paths = [planned_execution(c) for c in configs]
    stored = [_stored(score_path(scores_dir, c), run_identity(c), c.seed, settings, path or {})
              for c, path in zip(configs, paths)]
    todo = [c for c, row in zip(configs, stored) if row is None]
    log(f"{len(configs)} runs planned, {len(configs) - len(todo)} already scored in {scores_dir}")
    start, trained = time.time(), 0
    for config, row in zip(configs, stored):
        data_key = (config.dataset, config.validation_split)
        if raw and data_key not in raw_done:
            raw_done.add(data_key)
            path = raw_score_path(scores_dir, config)
            identity = {"dataset": config.dataset, "validation_split": config.validation_split}
            raw_row = _stored(path, identity, None, settings)
            if raw_row is None:
                raw_row = evaluation.score_raw(config, splits.get(config), settings, log)
                _store(path, identity, None, settings, raw_row)
            rows.append(raw_row)
        if row is None:
            if rundir.is_complete(config.run_dir):
                _check_run_dir(config)
            else:
                position = todo.index(config) + 1
                eta = (f", about {(time.time() - start) / trained * (len(todo) - position + 1) / 60:.0f} min left"
                       if trained else "")
                log(f"[{position}/{len(todo)}] {config.name}: {config.steps} steps{eta}")
                keras.backend.clear_session()
                train(config, verbose=2, log=log)
                trained += 1
            history = rundir.read_json(os.path.join(config.run_dir, "history.json"))
            row = evaluation.score_run(config.run_dir, config, splits.get(config), settings, log=log)
            _store(score_path(scores_dir, config), run_identity(config), config.seed, settings, row,
                   history.get("weights_sha256"), history.get("execution") or {})
            rows.append(row)
            if on_row:
                on_row(rows)
        else:
            rows.append(row)
    return rows
