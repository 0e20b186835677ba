"""The downstream probes and evaluate.py."""

import itertools
import json
import math
import os

import numpy as np
import pytest
from conftest import assert_one_line_error, run_script
from sklearn.metrics import normalized_mutual_info_score

from softvq_tf.experiments.probes import clustering_accuracy, kmeans_labels, linear_probe_accuracy, nmi


@pytest.mark.parametrize("seed", range(5))
def test_clustering_accuracy_equals_brute_force_and_ignores_cluster_names(seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    brute = max(np.mean(np.array(p)[clusters] == labels) for p in itertools.permutations(range(4)))
    assert clustering_accuracy(labels, clusters) == pytest.approx(brute)
    renamed = rng.permutation(4)[clusters] + 10
    assert clustering_accuracy(labels, renamed) == pytest.approx(brute)


def test_nmi_matches_formula_and_sklearn():
    rng = np.random.default_rng(0)
    y, c = rng.integers(0, 3, 200), rng.integers(0, 4, 200)
    joint = np.histogram2d(y, c, bins=(3, 4))[0] / len(y)
    py, pc = joint.sum(1), joint.sum(0)
    mi = sum(
        joint[i, j] * math.log(joint[i, j] / (py[i] * pc[j])) for i in range(3) for j in range(4) if joint[i, j] > 0
    )
    h = lambda p: -sum(x * math.log(x) for x in p if x > 0)  # noqa: E731
    assert nmi(y, c) == pytest.approx(2 * mi / (h(py) + h(pc)))
    assert nmi(y, c) == pytest.approx(normalized_mutual_info_score(y, c))
    assert nmi(y, y) == pytest.approx(1.0)


def test_kmeans_keeps_the_best_restart():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 1.0, size=(60, 2)) for m in (0, 3, 6, 9, 12)])
    _, one = kmeans_labels(x, 5, n_init=1, seed=3)
    _, ten = kmeans_labels(x, 5, n_init=10, seed=3)  # the same first restart, nine more
    _, thirty = kmeans_labels(x, 5, n_init=30, seed=3)  # the same first ten, twenty more
    assert thirty <= ten <= one


def test_linear_probe_separates_separable_data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3))
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    y = (x @ w).argmax(1)
    margin = np.sort(x @ w, 1)
    keep = margin[:, -1] - margin[:, -2] > 0.3  # a clear margin between classes
    x, y = x[keep], y[keep]
    assert linear_probe_accuracy(x[:800], y[:800], x[800:], y[800:], epochs=50) >= 0.99


def test_linear_probe_in_one_execution_is_the_per_step_probe_bit_for_bit(monkeypatch):
    import hashlib

    import keras

    digests = []
    fit = keras.Model.fit

    def recording_fit(model, *args, **kwargs):
        history = fit(model, *args, **kwargs)
        digests.append(hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights)).hexdigest())
        return history

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 6)).astype(np.float32), rng.integers(0, 3, 300)
    args = (x[:200], y[:200], x[200:], y[200:])
    one = linear_probe_accuracy(*args, epochs=1, min_steps=40)  # all 40 updates in one graph execution
    each = linear_probe_accuracy(*args, epochs=1, min_steps=40, steps_per_execution=1)
    assert one == each and len(digests) == 2 and digests[0] == digests[1]


@pytest.mark.slow
def test_evaluate_end_to_end_writes_the_table(digits_run, tmp_path):
    stem = str(tmp_path / "table")
    result = run_script(
        ["evaluate.py", "--runs", digits_run, "--kmeans-inits", "3", "--probe-epochs", "2", "--output", stem]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.load(open(stem + ".json"))["table"]
    assert [row["model"] for row in table] == ["raw", "soft_vq"]
    for row in table:
        assert 10 < row["acc"] <= 100 and 0 < row["nmi"] <= 1 and 10 < row["cls"] <= 100  # 10 classes: chance is 10%
    markdown = open(stem + ".md").read()
    assert "Soft VQ-VAE" in markdown and "Raw data" in markdown and "Soft VQ-VAE" in result.stdout
    assert open(stem + ".csv").read().startswith("dataset,model,variant,K,d,n,acc")
    stored = json.load(open(tmp_path / "scores" / "digits" / (os.path.basename(digits_run) + ".json")))
    # One line per run with each probe's seconds, kept in its scores with whether each probe converged.
    (line,) = [line for line in result.stdout.splitlines() if "probe seconds: encoding" in line]
    assert "k-means converged" in line and "logistic regression converged" in line, line
    assert set(stored["row"]["probe_seconds"]) == {"encode", "kmeans", "linear_probe", "logreg", "knn"}
    assert stored["row"]["probes_converged"] == {"kmeans": True, "logreg": True}
    assert "ConvergenceWarning" not in result.stderr
    assert stored["weights_sha256"] == json.load(open(os.path.join(digits_run, "history.json")))["weights_sha256"]
    again = run_script(
        ["evaluate.py", "--runs", digits_run, "--kmeans-inits", "3", "--probe-epochs", "2", "--output", stem]
    )
    assert again.returncode == 0 and "(scored before)" in again.stdout, again.stderr[-2000:]


@pytest.mark.slow
def test_evaluate_without_runs_is_one_line(tmp_path):
    assert_one_line_error(run_script(["evaluate.py", "--root", str(tmp_path)]), "no finished runs")


@pytest.mark.slow
def test_evaluate_scores_only_runs_directly_under_the_root(digits_run, tmp_path):
    import shutil

    shutil.copytree(
        digits_run, tmp_path / "runs" / "reproduce" / "digits" / "nested"
    )  # a reproduction's run: not listed
    assert_one_line_error(run_script(["evaluate.py", "--root", str(tmp_path / "runs")]), "no finished runs")
    from softvq_tf.training.rundir import find_runs

    shutil.copytree(digits_run, tmp_path / "runs" / "mine")
    assert find_runs(str(tmp_path / "runs")) == [str(tmp_path / "runs" / "mine")]


@pytest.mark.slow
def test_evaluate_run_without_encoder_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert_one_line_error(run_script(["evaluate.py", "--runs", str(tmp_path / "run")]), "no exported encoder")


@pytest.mark.slow
def test_evaluate_run_with_a_damaged_encoder_is_one_line_that_says_to_retrain(digits_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    (run / "encoder" / "saved_model.pb").write_bytes(b"\x08\x01torn")
    result = run_script(["evaluate.py", "--runs", str(run), "--kmeans-inits", "1", "--no-raw"])
    assert_one_line_error(result, "encoder is missing or damaged")
    assert f"delete {run}" in result.stderr


def test_a_missing_saved_autoencoder_is_one_line_that_says_to_retrain(tmp_path):
    from softvq_tf.experiments.scoring import code_latents
    from softvq_tf.training.errors import DataError

    with pytest.raises(DataError, match="autoencoder.keras is missing or damaged .*delete .* again to retrain"):
        code_latents(str(tmp_path), np.zeros((2, 4), np.float32))


def test_run_identity_ignores_seed_and_execution_but_nothing_else():
    from softvq_tf.training.config import identity_key, resolve_config, variant_label

    base = resolve_config("digits", "soft_vq", seed=0)
    assert variant_label(resolve_config("digits", "soft_vq", seed=3)) == ""
    for same in (
        dict(seed=3),
        dict(out="elsewhere", name="x"),
        dict(steps_per_execution=10, epoch_steps=250),
        dict(distribute="mirrored"),
        dict(jit_compile=True),
    ):
        assert identity_key(resolve_config("digits", "soft_vq", **same)) == identity_key(base), same
    for other in (
        dict(steps=1000),
        dict(batch_size=64),
        dict(lr=1e-3),
        dict(noise_std=0.1),
        dict(adam_epsilon=1e-7),
        dict(precision="mixed_bfloat16"),
        dict(validation_split=0.2),
        dict(num_codewords=16),
        dict(vq_weight=1.0),
    ):
        config = resolve_config("digits", "soft_vq", **other)
        assert identity_key(config) != identity_key(base), other
        assert variant_label(config) and config.name != base.name, other  # named and labelled apart
    label = variant_label(resolve_config("digits", "soft_vq", noise_std=0.3, precision="mixed_bfloat16"))
    assert label == "noise_std=0.3, precision=mixed_bfloat16"


def test_summary_groups_by_identity_and_shows_the_paper_only_for_its_settings():
    from softvq_tf.experiments.tables import summarize, to_markdown

    row = dict(dataset="mnist", model="soft_vq", K=128, d=64, acc=50.0, nmi=0.5, cls=90.0, seconds=1.0)
    rows = [
        {**row, "seed": 0, "variant": "", "identity": "a", "train_seconds": 100.0},
        {**row, "seed": 1, "variant": "", "identity": "a", "acc": 54.0, "train_seconds": 110.0},
        {**row, "seed": 2, "variant": "", "identity": "a", "acc": 52.0, "train_seconds": 5000.0},  # paused
        {**row, "seed": 0, "variant": "steps=2000", "identity": "b", "acc": 60.0},
    ]
    table = summarize(rows)
    assert [(e["variant"], e["n"], e["acc"]) for e in table] == [("", 3, 52.0), ("steps=2000", 1, 60.0)]
    assert table[0]["train_seconds"] == 110.0  # the median, in the JSON and CSV as in the Markdown
    assert (
        table[0]["paper"]["acc"] == 77.64 and table[1]["paper"] is None
    )  # another budget is not the paper's experiment
    text = to_markdown(table)
    assert "Soft VQ-VAE (steps=2000)" in text
    assert text.splitlines()[2].endswith("| 110 |")  # training time: the median over seeds, not a paused run's pull


def test_training_time_compares_rows_on_one_cpu():
    from softvq_tf.experiments.table_files import runs_markdown
    from softvq_tf.experiments.tables import summarize, timing_note, to_markdown

    row = dict(dataset="mnist", model="vq", K=128, d=64, acc=50.0, nmi=0.5, cls=90.0, seconds=1.0, variant="")
    fast, slow = "no XLA, AVX-512", "no XLA, AVX2"
    rows = [
        {**row, "seed": 0, "identity": "a", "train_seconds": 400.0, "path": fast, "run": "a0"},
        {**row, "seed": 1, "identity": "a", "train_seconds": 3000.0, "path": slow, "run": "a1"},
        {**row, "seed": 2, "identity": "a", "train_seconds": 420.0, "path": fast, "run": "a2"},
        {**row, "model": "soft_vq", "seed": 0, "identity": "b", "train_seconds": 2500.0, "path": slow, "run": "b0"},
    ]
    table = summarize(rows)
    times = {e["model"]: (e["train_seconds"], e["train_seconds_path"]) for e in table}
    assert times == {"vq": (410.0, fast), "soft_vq": (2500.0, slow)}  # the AVX2 run left out of VQ's median
    lines = to_markdown(table).splitlines()
    assert lines[2].endswith("| 410 |") and lines[3].endswith(f"| 2500 ({slow}) |")
    assert f"runs took ({fast})" in timing_note(table) and "gives its own path" in timing_note(table)
    assert "| 3000 | a1 |" in runs_markdown(rows)  # and every run's own time
    # The table's path is the one most runs took, even where most rows have none there.
    more = [*rows, {**rows[3], "model": "ae", "identity": "c", "run": "c0"}, {**rows[0], "seed": 3, "run": "a3"}]
    assert f"runs took ({fast})" in timing_note(summarize(more))


def test_the_indexed_linear_probe_trains_on_the_batches_of_the_shuffled_tensor_slices_bit_for_bit():
    """The probe gathers its batches by index (a speed change): the same updates on the same batches as the
    ``from_tensor_slices(...).shuffle(...)`` pipeline that made the stored scores."""
    import math

    import keras
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(700, 12)).astype(np.float32), rng.integers(0, 4, 700)
    weights = []
    fit = keras.Model.fit

    def before(model, data, **kwargs):  # the pipeline of 0.4.0 and earlier, on the probe's own standardised inputs
        mean, std = x.mean(0), x.std(0) + 1e-8
        slices = tf.data.Dataset.from_tensor_slices((((x - mean) / std).astype("float32"), y))
        return fit(model, slices.shuffle(len(x), seed=3).repeat().batch(256).prefetch(2), **kwargs)

    def recording(fitter):
        def fit_and_record(model, *args, **kwargs):
            history = fitter(model, *args, **kwargs)
            weights.append([w.numpy().copy() for w in model.weights])
            return history

        return fit_and_record

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", recording(fit))
        now = linear_probe_accuracy(x, y, x[:100], y[:100], epochs=3, seed=3, min_steps=0)
        patch.setattr(keras.Model, "fit", recording(before))
        then = linear_probe_accuracy(x, y, x[:100], y[:100], epochs=3, seed=3, min_steps=0)
    assert math.isclose(now, then) and len(weights) == 2
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_the_logistic_regression_says_whether_it_converged():
    from softvq_tf.experiments.probes import logistic_regression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    converged = logistic_regression(x[:300], y[:300], x[300:], y[300:])
    assert converged.converged and converged.iterations < 5000 and converged.accuracy > 0.9
    capped = logistic_regression(x[:300], y[:300], x[300:], y[300:], max_iter=2)
    assert not capped.converged and capped.iterations == 2


def test_kmeans_restarts_say_whether_they_converged(monkeypatch):
    import functools

    from sklearn.cluster import KMeans

    from softvq_tf.experiments import probes

    x = np.random.default_rng(0).normal(size=(300, 4))
    assert probes.kmeans_restarts(x, 5, n_init=3).converged
    monkeypatch.setattr(probes, "KMeans", functools.partial(KMeans, max_iter=1))
    assert not probes.kmeans_restarts(x, 5, n_init=3).converged


@pytest.mark.parametrize("extras", [False, True])
def test_a_grid_runs_the_logistic_regression_and_the_knn_only_with_grid_extras(extras):
    from softvq_tf.experiments.scoring import probe_summary, score_latents

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    z = (rng.normal(size=(240, 2, 2, 3)) + y[:, None, None, None]).astype(np.float32)  # a 2 x 2 grid of codes
    lines = []
    scores = score_latents(z[:180], y[:180], z[180:], y[180:], 3, 1, log=lines.append, grid_extras=extras)
    assert ("cls_logreg" in scores and "knn" in scores) == extras
    assert set(scores["probe_seconds"]) == {"kmeans", "linear_probe"} | ({"logreg", "knn"} if extras else set())
    assert scores["probes_converged"] == {"kmeans": True, **({"logreg": True} if extras else {})}
    flat = score_latents(z[:180].reshape(180, -1), y[:180], z[180:].reshape(60, -1), y[180:], 3, 1, log=lines.append)
    assert "cls_logreg" in flat and "knn" in flat  # a flat code always has both
    assert "logistic regression converged" in probe_summary(flat) and "k-means converged" in probe_summary(flat)


def test_tables_mark_logistic_regressions_made_before_convergence_was_recorded_or_unconverged():
    from softvq_tf.experiments.tables import LOGREG_NOTE, logreg_mark, logreg_note

    old = {"cls_logreg": 80.0}
    converged = {"cls_logreg": 80.1, "probes_converged": {"kmeans": True, "logreg": True}}
    unconverged = {"cls_logreg": 79.0, "probes_converged": {"kmeans": True, "logreg": False}}
    grid = {"probes_converged": {"kmeans": True}}  # no logistic regression on a grid: nothing to mark
    assert logreg_mark([converged, grid]) == "" and logreg_mark([old, converged]) == "†"
    assert logreg_mark([unconverged]) == "‡" and logreg_mark([old, unconverged]) == "†‡"
    assert logreg_note(["", ""]) == "" and logreg_note(["", "†"]) == LOGREG_NOTE


def test_a_stored_row_gets_its_stored_k_means_and_linear_probe_scores_exactly():
    """The k-means restarts and the linear probe changed for speed only (0.4.0): the digits raw row stored in
    results/scores gives its stored numbers, to the last bit, through today's code."""
    import pathlib

    from softvq_tf.experiments import scoring
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.data import load_splits

    record = json.loads((pathlib.Path(__file__).parents[1] / "results/scores/digits/raw.json").read_text())
    assert record["probe_settings"] == scoring.probe_settings()
    config = resolve_config("digits", "ae")
    row = scoring.score_raw(config, load_splits("digits"), scoring.probe_settings(), log=lambda *a: None)
    stored = record["row"]
    for key in ("acc", "nmi", "acc_near_best", "nmi_near_best", "near_best_restarts", "cls"):
        assert row[key] == stored[key], (key, row[key], stored[key])
    for key in ("acc", "nmi"):  # every restart's partition scores the same
        assert row["kmeans_restarts"][key] == stored["kmeans_restarts"][key], key
    # An inertia is a float32 sum, stored to 7 digits, whose last bits follow BLAS's threads (1 thread moves them).
    np.testing.assert_allclose(row["kmeans_restarts"]["inertia"], stored["kmeans_restarts"]["inertia"], rtol=1e-5)
