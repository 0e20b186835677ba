"""Smoke runs of the reproduction, sweep and benchmark commands (a few steps: they must run end to end)."""

import json

from conftest import assert_one_line_error, run_script


def test_reproduce_smoke_writes_results_and_reuses_finished_runs(tmp_path):
    args = ["-m", "softvq_tf.reproduce", "--dataset", "digits", "--seeds", "1", "--min-seeds-key", "2", "--steps", "2",
            "--kmeans-inits", "1", "--probe-epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    first = run_script(args)
    assert first.returncode == 0, first.stderr[-3000:]
    table = json.load(open(tmp_path / "results" / "digits.json"))["table"]
    assert [row["model"] for row in table] == ["raw", "ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq"]
    assert [row["n"] for row in table] == [1, 2, 1, 1, 1, 1, 2]
    assert table[1]["acc_std"] is not None  # two seeds: a spread is reported
    for suffix in (".md", ".csv", ".png"):
        assert (tmp_path / "results" / f"digits{suffix}").stat().st_size > 0
    assert "Command: `python -m softvq_tf.reproduce" in (tmp_path / "results" / "digits.md").read_text()
    again = run_script(args)
    assert again.returncode == 0 and "8 runs, 8 already finished" in again.stdout


def test_bench_smoke(tmp_path):
    result = run_script(["-m", "softvq_tf.bench", "--steps", "4", "--repeats", "1", "--kmeans-inits", "1", "--output", str(tmp_path / "b.md")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "b.md").read_text()
    assert "GFLOP/s" in report and report.count("| MLP") == 10 and report.count("| CNN") == 3
    assert "failed" not in report  # every lever, XLA and bf16 included, runs here


def test_sweep_scores_a_validation_split_and_rejects_bad_variants(tmp_path):
    args = ["-m", "softvq_tf.sweep", "--dataset", "digits", "--steps", "2", "--kmeans-inits", "1", "--probe-epochs", "1",
            "--variant", "original:", "--variant", "gaussian_noisy:likelihood=gaussian,noise_std=0.2",
            "--variant", "ae:bottleneck=ae", "--runs-dir", str(tmp_path / "runs"), "--output", str(tmp_path / "s.md")]
    result = run_script(args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.load(open(tmp_path / "s.json"))
    assert [r["variant"] for r in rows] == ["original", "gaussian_noisy", "ae"]
    assert rows[1]["settings"] == {"likelihood": "gaussian", "noise_std": 0.2}
    assert rows[2]["perplexity"] is None and rows[0]["perplexity"] is not None
    config = json.load(open(tmp_path / "runs" / "digits" / "gaussian_noisy_seed0" / "config.json"))
    assert config["validation_split"] > 0 and config["noise_std"] == 0.2  # never the test split
    assert "| gaussian_noisy | 1 |" in (tmp_path / "s.md").read_text()
    bad = run_script(["-m", "softvq_tf.sweep", "--dataset", "digits", "--variant", "x:noise_std=loud"])
    assert_one_line_error(bad, "noise_std", "float")
    test_split = run_script(["-m", "softvq_tf.sweep", "--dataset", "digits", "--variant", "x:", "--validation-split", "0"])
    assert_one_line_error(test_split, "validation-split")
