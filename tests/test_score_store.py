"""The score store: what a stored score may be reused for, the near-best statistic, the intervals."""

import json
import pathlib

import numpy as np
import pytest
from scipy import stats

from softvq_tf.experiments import plan, probes, table_files, tables
from softvq_tf.training.config import resolve_config, run_identity

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "results"
STORED_RUN = RESULTS / "scores" / "digits" / "digits_soft_vq_d16_K32_seed0.json"


def _record(**changes):
    record = {
        "identity": {"a": 1},
        "seed": 0,
        "probe_settings": {"kmeans_inits": 100},
        "weights_sha256": "ab" * 32,
        "execution": {"xla": True, "replicas": 1},
    }
    return {**record, **changes}


def test_a_stored_score_is_reused_only_on_the_same_identity_seed_probes_and_path():
    args = ({"a": 1}, 0, {"kmeans_inits": 100}, {"xla": True, "replicas": 1})
    assert plan.reusable(_record(), *args)
    assert not plan.reusable(_record(identity={"a": 2}), *args)
    assert not plan.reusable(_record(seed=1), *args)
    assert not plan.reusable(_record(probe_settings={"kmeans_inits": 10}), *args)
    assert not plan.reusable(_record(execution={"xla": False, "replicas": 1}), *args)  # another path, other weights
    assert not plan.reusable(_record(weights_sha256=None), *args)  # no digest: nothing shows what it reproduces


def test_a_score_from_another_cpu_is_reused_only_when_asked_and_names_its_path(tmp_path):
    avx512 = {"xla": True, "replicas": 1, "cpu_features": "x86_64: avx avx2 fma avx512f"}
    avx2 = {**avx512, "cpu_features": "x86_64: avx avx2 fma"}
    args = ({"a": 1}, 0, {"kmeans_inits": 100}, avx2)
    assert not plan.reusable(_record(execution=avx512), *args)
    assert plan.reusable(_record(execution=avx512), *args, any_cpu=True)
    assert not plan.reusable(_record(execution={**avx512, "xla": False}), *args, any_cpu=True)  # another path still
    assert plan.path_label(avx512) == "XLA, AVX-512" and plan.path_label(avx2) == "XLA, AVX2"
    assert plan.path_label({"xla": False, "inferred_from": "a commit"}) == "no XLA (inferred)"

    config = resolve_config("digits", "soft_vq", out=str(tmp_path))
    store = plan.ScoreStore(str(tmp_path / "scores"))
    store.put(config, {"kmeans_inits": 100}, {"acc": 50.0}, "ab" * 32, avx512)
    assert store.lookup(config, {"kmeans_inits": 100}, execution=avx2) is None
    assert store.lookup(config, {"kmeans_inits": 100}, execution=avx2, any_cpu=True)["path"] == "XLA, AVX-512"
    from_store = store.lookup(config, {"kmeans_inits": 100}, any_path=True)  # a table of what is stored
    assert from_store == {"acc": 50.0, "path": "XLA, AVX-512"}
    assert store.lookup(config, {"kmeans_inits": 10}, any_path=True) is None  # other probes: never


def test_an_fsq_score_without_its_code_probe_is_redone_and_other_models_keep_theirs(tmp_path):
    store = plan.ScoreStore(str(tmp_path / "scores"))
    path, settings = {"xla": True, "replicas": 1}, {"kmeans_inits": 100}
    for bottleneck in ("fsq", "soft_vq"):
        config = resolve_config("digits", bottleneck, out=str(tmp_path))
        record = {"identity": run_identity(config), "seed": 0, "probe_settings": settings, "row": {"acc": 1.0}}
        record.update(weights_sha256="ab" * 32, execution=path)  # as stored before FSQ's code was probed
        store._write(store.path(config), record)
        found = store.lookup(config, settings, execution=path)
        assert (found is None) == (bottleneck == "fsq"), bottleneck
        store.put(config, settings, {"acc": 2.0}, "ab" * 32, path)  # stored by this code: reused
        assert store.lookup(config, settings, execution=path)["acc"] == 2.0


def test_old_scores_without_a_digest_are_never_reused():
    for path in (RESULTS / "scores" / "fashion_mnist").glob("*.json"):
        record = json.loads(path.read_text())
        if "row" in record and record["seed"] is not None and not record.get("weights_sha256"):
            assert not plan.reusable(record, record["identity"], record["seed"], record["probe_settings"], {})


@pytest.mark.slow
def test_retraining_a_stored_run_gives_its_stored_weights_digest(tmp_path):
    """The committed quick-start score (``softvq-reproduce --dataset digits``) is reused here only if retraining
    reproduces it: this retrains it and compares the digest. On a CPU of another instruction set than the one
    that stored it, the store must refuse it, and the digest this CPU gives must at least be its own every time."""
    from softvq_tf.training.fit import train
    from softvq_tf.training.strategy import planned_execution

    stored = json.loads(STORED_RUN.read_text())
    config = resolve_config("digits", "soft_vq", seed=stored["seed"], out=str(tmp_path / "a"))
    assert run_identity(config) == stored["identity"]
    path = planned_execution(config)
    reused = plan.reusable(stored, stored["identity"], stored["seed"], stored["probe_settings"], path)
    result = train(config, verbose=0, log=lambda *a: None)
    assert result.execution == path
    if stored["execution"] == path:
        assert reused and result.weights_digest == stored["weights_sha256"]
        return
    assert not reused and stored["execution"]["cpu_features"] != path["cpu_features"]
    again = train(
        resolve_config("digits", "soft_vq", seed=stored["seed"], out=str(tmp_path / "b")),
        verbose=0,
        log=lambda *a: None,
    )
    assert again.weights_digest == result.weights_digest


def test_near_best_mean_averages_the_restarts_within_the_margin():
    inertias = [100.0, 100.4, 100.6, 130.0]
    accs = [50.0, 100.0, 70.0, 10.0]
    assert probes.near_best_mean(inertias, accs, margin=0.005) == pytest.approx(75.0)  # 100.6 is 0.6% off
    assert probes.near_best_mean(inertias, accs, margin=0.0) == 50.0  # the paper's statistic


def test_near_best_statistic_does_not_flip_on_a_tie_between_partitions():
    """Four clusters on the corners of a square, k = 2: the left/right split (ACC 100) and the top/bottom split
    (ACC 50) have the same inertia. The lowest inertia picks one of them; the near-best mean counts both."""
    rng = np.random.default_rng(0)
    corner = rng.normal(0.0, 0.1, size=(30, 2)) + 1.0
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    points = np.concatenate([corner @ np.linalg.matrix_power(rot, i).T for i in range(4)])
    labels = (points[:, 0] > 0).astype(int)  # left or right
    restarts = probes.kmeans_restarts(points, 2, n_init=40, seed=0)
    accs = np.array([100 * probes.clustering_accuracy(labels, c) for c in restarts.labels])
    near = restarts.near_best()
    assert {50.0, 100.0} <= set(np.round(accs[near], 6))  # both tied partitions are near the best
    assert np.round(accs[restarts.best], 6) in (50.0, 100.0)  # the headline is one of them, by chance
    assert 50.0 < probes.near_best_mean(restarts.inertias, accs) < 100.0


def test_welch_interval_matches_the_welch_satterthwaite_formula():
    a, b = np.array([59.9, 53.6, 59.7, 55.1, 54.4]), np.array([51.4, 48.0, 55.3, 50.1, 52.2])
    diff, low, high = tables.welch_interval(list(a), list(b))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (low, high) == pytest.approx((diff - half, diff + half))
    assert tables.welch_interval([1.0], [2.0, 3.0]) is None  # one seed: no interval


def _grid_row(model, seed, nmse, hard=None, variant="network=conv_grid"):
    row = {"dataset": "fashion_mnist", "model": model, "variant": variant, "identity_key": model, "K": 512, "d": 64}
    row.update(seed=seed, run=f"{model}_seed{seed}", acc=30.0 + seed, nmi=0.2, cls=87.0 + seed, train_seconds=600)
    row.update(test_nmse=nmse, test_psnr=-10 * np.log10(nmse), token_perplexity=20.0 + seed, tokens_in_use=40 + seed)
    row["bits_per_image"] = 49 * np.log2(row["tokens_in_use"])
    if hard is not None:
        row.update(hard_test_nmse=hard, hard_test_psnr=-10 * np.log10(hard))
    return row


def test_a_grid_table_gives_soft_vq_twice_and_rivals_against_its_mean_and_its_hard_tokens(tmp_path):
    rows = [_grid_row("soft_vq", s, 0.01 + 0.001 * s, hard=3.0 + s) for s in range(3)]
    rows += [_grid_row("vq", s, 0.05 + 0.002 * s) for s in range(3)]
    table = tables.summarize(rows)
    table_files.write_tables(table, rows, str(tmp_path / "grid"))
    text = (tmp_path / "grid.md").read_text()
    assert "| Soft VQ-VAE | 3 | posterior mean | 0.0110 ± 0.0010 |" in text
    assert "| Soft VQ-VAE | 3 | most probable codeword (hard tokens) | 4.0000 ± 1.0000 |" in text
    assert "| VQ-VAE | 3 | nearest codeword | 0.0520 ± 0.0020 |" in text
    vq_nmse = [r["test_nmse"] for r in rows if r["model"] == "vq"]
    against_mean = tables.welch_interval(vq_nmse, [0.010, 0.011, 0.012])
    against_hard = tables.welch_interval(vq_nmse, [3.0, 4.0, 5.0])
    line = next(line for line in text.splitlines() if line.startswith("| VQ-VAE | 3 | +"))
    cells = line.split(" | ")
    assert cells[2] == f"{against_mean[0]:+.4f} [{against_mean[1]:+.4f}, {against_mean[2]:+.4f}]*"
    assert cells[3] == f"{against_hard[0]:+.4f} [{against_hard[1]:+.4f}, {against_hard[2]:+.4f}]*"


def test_a_chosen_tokenizer_is_the_reference_of_every_line_decoded_from_its_hard_tokens(tmp_path):
    """Issue #45: rivals minus a soft VQ-VAE whose decoder reads its hard tokens, soft VQ's two lines apart."""
    rows = [_grid_row("soft_vq", s, 0.01 + 0.001 * s, hard=3.0 + s) for s in range(3)]
    rows += [_grid_row("vq", s, 0.05 + 0.002 * s) for s in range(3)]
    for s in range(3):
        hard = 0.03 + 0.003 * s
        tokenizer = _grid_row("soft_vq", s, hard, hard=hard, variant="network=conv_grid, soft_decode=most_probable")
        rows.append({**tokenizer, "identity_key": "tokenizer", "cls": 80.0 + s})
    table_files.write_tables(tables.summarize(rows), rows, str(tmp_path / "grid"), reference="tokenizer")
    text = (tmp_path / "grid.md").read_text()
    lines = text.splitlines()
    name = "Soft VQ-VAE (soft_decode=most_probable)"
    assert [line.split(" | ")[2] for line in lines if line.startswith(f"| {name} | 3 | most")] == [
        "most probable codeword (hard tokens)"  # once: its decoder input is its hard tokens
    ]
    assert f"Difference to {name} decoded from its hard tokens" in text
    assert f"model minus {name};" in text  # the probes' differences too
    ref_nmse = [0.03, 0.033, 0.036]
    for model, reads, values in (
        ("VQ-VAE", "nearest codeword", [r["test_nmse"] for r in rows if r["model"] == "vq"]),
        ("Soft VQ-VAE", "posterior mean", [0.010, 0.011, 0.012]),
        ("Soft VQ-VAE", "most probable codeword (hard tokens)", [3.0, 4.0, 5.0]),
    ):
        d = tables.welch_interval(values, ref_nmse)
        line = next(line for line in lines if line.startswith(f"| {model} | 3 | {reads} | ") and "[" in line)
        assert line.split(" | ")[3] == f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]*"
    probe_line = next(line for line in lines if line.startswith("| VQ-VAE | 3 | +"))  # the probes' differences
    d = tables.welch_interval([87.0, 88.0, 89.0], [80.0, 81.0, 82.0])
    assert f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]*" in probe_line  # linear probe, minus the tokenizer's


def test_a_continuous_code_on_a_grid_is_the_reference_row_without_tokens(tmp_path):
    """The AE on conv_grid: its reconstruction beside the tokenizers', '-' for every token column."""
    rows = [_grid_row("soft_vq", s, 0.01 + 0.001 * s, hard=3.0 + s) for s in range(2)]
    for s in range(2):
        ae = _grid_row("ae", s, 0.004 + 0.001 * s)
        for key in ("token_perplexity", "tokens_in_use", "bits_per_image"):
            del ae[key]  # what token_scores gives a bottleneck without tokens
        rows.append(ae)
    table_files.write_tables(tables.summarize(rows), rows, str(tmp_path / "grid"))
    text = (tmp_path / "grid.md").read_text()
    assert "| Baseline Autoencoder | 2 | continuous code (no tokens) | 0.0045 ± 0.0007 | " in text
    line = next(line for line in text.splitlines() if line.startswith("| Baseline Autoencoder | 2 | continuous"))
    assert line.split(" | ")[5:8] == ["-", "-", "-"]  # token perplexity, tokens in use, bits per image
    difference = next(line for line in text.splitlines() if line.startswith("| Baseline Autoencoder | 2 | -0.0060"))
    assert difference.split(" | ")[6:8] == ["-", "-"]  # no token use to compare


def test_a_table_without_a_grid_has_no_grid_section(tmp_path):
    rows = [{**_grid_row("vq", s, 0.05), "token_perplexity": None} for s in range(2)]
    table_files.write_tables(tables.summarize(rows), rows, str(tmp_path / "flat"))
    assert "Grid of codes" not in (tmp_path / "flat.md").read_text()
