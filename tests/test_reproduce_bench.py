"""Smoke runs of the reproduction command and the benchmark (2 steps: they must run end to end)."""

import json

from conftest import run_script


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
    result = run_script(["-m", "softvq_tf.bench", "--steps", "4", "--kmeans-inits", "1", "--output", str(tmp_path / "b.md")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "b.md").read_text()
    assert "GFLOP/s" in report and report.count("| MLP") == 8 and report.count("| CNN") == 2
