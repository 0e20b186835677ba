"""Figure 4's command end to end on the bundled digits: six trained bottlenecks, six maps, the numbers beside them."""

import pytest


@pytest.mark.slow
def test_figure4_trains_six_maps_and_writes_the_figure_with_its_numbers(tmp_path):
    from softvq_tf.experiments import figure4

    output = tmp_path / "figures" / "figure4_digits.png"
    argv = ["--dataset", "digits", "--steps", "40", "--points", "120", "--neighbours", "5", "--kmeans-inits", "3"]
    argv += ["--probe-epochs", "2", "--runs-dir", str(tmp_path / "runs"), "--scores-dir", str(tmp_path / "scores")]
    assert figure4.main([*argv, "--output", str(output)]) == 0
    assert output.stat().st_size > 10_000
    table = (tmp_path / "figures" / "figure4_digits.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "_seed0 |" in line]
    assert len(rows) == 6 and "softvq-figure4 --dataset digits" in table
    for row in rows:
        nmse, knn, trust = (float(cell) for cell in row.split(" | ")[1:4])
        assert 0 < nmse < 2 and 10 < knn <= 100 and 0.5 < trust <= 1  # 10 classes: chance k-NN is 10%
    assert sorted(p.name for p in (tmp_path / "runs" / "digits").iterdir()) == sorted(
        f"digits_{b}_d60{k}_steps40_seed0"
        for b, k in [
            ("ae", ""),
            ("vae", ""),
            ("beta_vae", ""),
            ("info_dropout", ""),
            ("vq", "_K32"),
            ("soft_vq", "_K32"),
        ]
    )


def test_figure4_refuses_too_few_points_in_one_line(capsys):
    from softvq_tf.experiments import figure4
    from softvq_tf.training.errors import run_cli

    assert run_cli(figure4.main, ["--dataset", "digits", "--points", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--points must be at least" in err
