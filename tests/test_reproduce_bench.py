"""Smoke runs of the reproduction, sweep and benchmark commands (a few steps: they must run end to end)."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, assert_one_line_error, run_script

# Every test here trains in subprocesses or across processes: minutes in all.
pytestmark = pytest.mark.slow


def test_reproduce_smoke_writes_results_and_reuses_finished_runs(tmp_path):
    args = [
        "-m",
        "softvq_tf.experiments.reproduce",
        "--dataset",
        "digits",
        "--seeds",
        "1",
        "--min-seeds-key",
        "2",
        "--steps",
        "2",
        "--kmeans-inits",
        "1",
        "--probe-epochs",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    # Two reproductions at once on one runs folder share the work: each run is trained by exactly one of them,
    # and both finish with the complete table.
    both = [
        subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900) for p in both]
    for p, (out, err) in zip(both, outputs):
        assert p.returncode == 0 and err == "", err[-3000:]  # no TensorFlow start-up log either
    trained = [line.split()[1].rstrip(":") for out, _ in outputs for line in out.splitlines() if line.startswith("[")]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 8, trained
    table = json.load(open(tmp_path / "results" / "digits.json"))["table"]
    assert [row["model"] for row in table] == ["raw", "ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq"]
    assert [row["n"] for row in table] == [1, 2, 1, 1, 1, 1, 2]
    assert table[1]["acc_std"] is not None  # two seeds: a spread is reported
    for suffix in (".md", ".csv", ".png"):
        assert (tmp_path / "results" / f"digits{suffix}").stat().st_size > 0
    assert "Command: `softvq-reproduce" in (tmp_path / "results" / "digits.md").read_text()
    scores = sorted(p.name for p in (tmp_path / "results" / "scores" / "digits").glob("*.json"))
    assert len(scores) == 9 and "raw.json" in scores  # one file per run, and the raw data
    # Another machine: only the committed results/ travel; nothing is retrained, the table is the same.
    shutil.rmtree(tmp_path / "runs")
    again = run_script(args)
    assert again.returncode == 0 and "8 runs planned, 8 already scored" in again.stdout, again.stderr[-2000:]
    assert not (tmp_path / "runs").exists()
    assert json.load(open(tmp_path / "results" / "digits.json"))["table"] == table
    # Other settings are other runs: a budget of 3 steps reuses none of the 2-step runs or scores.
    # (--from-store: plan and look up only; the paper figure's absence on other settings is test_probes's.)
    steps = args.index("--steps") + 1
    other = run_script([*args[:steps], "3", *args[steps + 1 :], "--from-store"])
    assert other.returncode == 0 and "8 runs planned, 0 already scored" in other.stdout, other.stderr[-2000:]
    assert not (tmp_path / "runs").exists()


def test_python_m_softvq_tf_reproduce_is_the_reproduce_command():
    """The module name the design and issue 16 give runs softvq-reproduce itself (and checks its input first)."""
    usage = run_script(["-m", "softvq_tf.reproduce", "--help"])
    assert usage.returncode == 0 and usage.stdout.startswith("usage: softvq-reproduce"), usage.stderr[-2000:]
    assert "--min-seeds-key" in usage.stdout
    assert_one_line_error(run_script(["-m", "softvq_tf.reproduce", "--dataset", "imagenet"]), "--dataset", "imagenet")


def test_more_seeds_adds_seeds_to_the_named_rows_only_seed_major():
    from softvq_tf.experiments.reproduce import parse_more_seeds, plan_runs, seed_counts

    counts = seed_counts(2, {"ae": 3, "soft_vq": 3}, parse_more_seeds("soft_vq=4,beta_vae=4"))
    configs = plan_runs("digits", counts, {"steps": 2})
    runs = [(c.bottleneck, c.seed) for c in configs]
    assert len(runs) == 6 * 2 + 1 + 2 + 2  # ae to 3; soft_vq and beta_vae to 4
    assert runs[:6] == [(b, 0) for b in ("ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq")]
    assert runs[12:] == [("ae", 2), ("beta_vae", 2), ("soft_vq", 2), ("beta_vae", 3), ("soft_vq", 3)]
    for bad, words in (("softvq=3", ("unknown bottleneck", "soft_vq")), ("vq=0", ("seed count", "vq=10"))):
        assert_one_line_error(
            run_script(["-m", "softvq_tf.reproduce", "--dataset", "digits", "--more-seeds", bad]), *words
        )


def test_a_finished_run_is_never_reused_with_other_settings(tmp_path):
    base = ["train.py", "--bottleneck", "ae", "--latent-dim", "4", "--quiet", "--out", str(tmp_path), "--name", "x"]
    assert run_script([*base, "--steps", "2"]).returncode == 0
    assert_one_line_error(run_script([*base, "--steps", "3"]), "other settings", "steps")
    assert_one_line_error(run_script([*base, "--steps", "2"]), "already complete")
    # reproduce/sweep: a run folder under the expected name that holds another run is refused, not scored.
    from softvq_tf.experiments import plan
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.errors import UsageError

    config = resolve_config("digits", "ae", latent_dim=4, steps=2, seed=1, out=str(tmp_path), name="x")
    with pytest.raises(UsageError, match="other settings"):
        plan.run_plan(
            [config], str(tmp_path / "scores"), kmeans_inits=1, probe_epochs=1, raw=False, log=lambda *a: None
        )


def test_bench_smoke(tmp_path):
    from conftest import FASHION

    result = run_script(
        [
            "-m",
            "benchmarks.bench",
            "--data-dir",
            FASHION,
            "--short",
            "2",
            "--long",
            "4",
            "--cnn-short",
            "1",
            "--cnn-long",
            "2",
            "--pairs",
            "1",
            "--repeats",
            "2",
            "--kmeans-inits",
            "1",
            "--cases",
            "4,7",  # a bfloat16 MLP (its ceiling in its own precision) and a float32 CNN: every kind of row
            "--output",
            str(tmp_path / "b.md"),
        ]
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    report = (tmp_path / "b.md").read_text()
    assert report.count("| MLP") == 1 and report.count("| CNN") == 1  # every chosen row ran
    assert "3,811,168" in report  # the MLP soft VQ-VAE's parameter count, beside its ceiling
    missing = run_script(["-m", "benchmarks.bench", "--data-dir", str(tmp_path / "nowhere")])
    assert_one_line_error(missing, "--data-dir", "dataset-fashion-mnist")
    bad_cases = run_script(["-m", "benchmarks.bench", "--data-dir", FASHION, "--cases", "0,9"])
    assert_one_line_error(bad_cases, "--cases", "1 to 8")


def test_sweep_scores_a_validation_split_and_rejects_bad_variants(tmp_path):
    args = [
        "-m",
        "softvq_tf.experiments.sweep",
        "--dataset",
        "digits",
        "--steps",
        "2",
        "--kmeans-inits",
        "1",
        "--probe-epochs",
        "1",
        "--variant",
        "gaussian_noisy:likelihood=gaussian,noise_std=0.2",
        "--variant",
        "ae:bottleneck=ae",
        "--variant",
        "fsq:bottleneck=fsq",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--output",
        str(tmp_path / "s.md"),
    ]
    result = run_script(args)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    rows = json.load(open(tmp_path / "s.json"))
    # FSQ is probed on z_e and on its own code, each a row, in the order the variants were given.
    assert [r["variant"] for r in rows] == ["gaussian_noisy", "ae", "fsq", "fsq (probed on its code)"]
    assert rows[3]["reconstruction_nmse"] == rows[2]["reconstruction_nmse"]  # one run, two latents
    assert rows[0]["settings"] == {"likelihood": "gaussian", "noise_std": 0.2}
    assert rows[1]["perplexity"] is None and rows[0]["perplexity"] is not None
    config = json.load(
        open(next((tmp_path / "runs" / "digits").glob("digits_soft_vq_*gaussian*noise0.2*seed0")) / "config.json")
    )
    assert config["validation_split"] > 0 and config["noise_std"] == 0.2  # never the test split
    assert (tmp_path / "scores" / "digits").is_dir()  # per-run scores beside the output
    assert "| gaussian_noisy | 1 |" in (tmp_path / "s.md").read_text()
    bad = run_script(["-m", "softvq_tf.experiments.sweep", "--dataset", "digits", "--variant", "x:noise_std=loud"])
    assert_one_line_error(bad, "noise_std", "float")
    test_split = run_script(
        ["-m", "softvq_tf.experiments.sweep", "--dataset", "digits", "--variant", "x:", "--validation-split", "0"]
    )
    assert_one_line_error(test_split, "validation-split")


def test_sweep_test_flag_scores_the_test_split_with_remedies(tmp_path):
    args = [
        "-m",
        "softvq_tf.experiments.sweep",
        "--test",
        "--dataset",
        "digits",
        "--bottleneck",
        "vq",
        "--steps",
        "60",
        "--kmeans-inits",
        "1",
        "--probe-epochs",
        "1",
        "--variant",
        "plain:",
        "--variant",
        "all:ema_decay=0.99,kmeans_init=true,dead_code_steps=5",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--output",
        str(tmp_path / "t.md"),
    ]
    result = run_script(args)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    table = json.load(open(tmp_path / "t.json"))["table"]  # the full table: one entry per variant
    plain = [e for e in table if "ema_decay" not in e["variant"]]
    remedied = [e for e in table if "dead_code_steps=5" in e["variant"] and "ema_decay=0.99" in e["variant"]]
    assert len(table) == 2 and len(plain) == 1 and len(remedied) == 1
    assert plain[0]["dead_code_restarts"] is None and remedied[0]["dead_code_restarts"] > 0
    run = next((tmp_path / "runs" / "digits").glob("digits_vq_*restart5_ema0.99_kmeans*_seed0"))
    config = json.load(open(run / "config.json"))
    assert config["validation_split"] == 0 and config["kmeans_init"] is True
    text = (tmp_path / "t.md").read_text()
    assert "on the test split" in text and "training time (s, median)" in text and "Every run:" in text
    assert "k-means restart (of 1) with" in text  # the note names the restarts the scores used
    # --from-store trains nothing and writes the table of the runs scored so far (as after each run of a sweep).
    (tmp_path / "scores" / "digits" / "digits_vq_d16_K32_steps60_seed0.json").unlink()  # the plain run's
    (tmp_path / "t.md").unlink()
    partial = run_script([*args, "--from-store"])
    assert partial.returncode == 0 and partial.stderr == "", partial.stderr[-3000:]
    assert "Epoch" not in partial.stdout and "1 already scored" in partial.stdout
    entries = json.load(open(tmp_path / "t.json"))["table"]
    assert len(entries) == 1 and "dead_code_steps=5" in entries[0]["variant"]
    command = (tmp_path / "t.md").read_text().splitlines()[2]
    # The file names the command that trains its runs; --from-store only rewrote it.
    assert command.startswith("Command: `softvq-sweep --test") and "--from-store" not in command, command


def test_sweep_from_an_empty_store_is_one_line(tmp_path, capsys):
    from softvq_tf.experiments import sweep
    from softvq_tf.training.errors import run_cli

    argv = ["--dataset", "digits", "--variant", "x:", "--from-store", "--scores-dir", str(tmp_path / "scores")]
    assert run_cli(sweep.main, [*argv, "--output", str(tmp_path / "s.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no stored scores" in err and "without --from-store" in err


@pytest.mark.parametrize("extra", [["--test", "--reference", "y"], ["--reference", "x"]])
def test_sweep_refuses_a_reference_that_is_not_a_tested_variant_in_one_line(tmp_path, capsys, extra):
    from softvq_tf.experiments import sweep
    from softvq_tf.training.errors import run_cli

    argv = ["--dataset", "digits", "--variant", "x:", *extra, "--output", str(tmp_path / "s.md")]
    assert run_cli(sweep.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--reference" in err and not (tmp_path / "s.md").exists()
