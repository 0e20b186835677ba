"""train.py as a user runs it: real data end to end, and bad input."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import FASHION, assert_one_line_error, run_script


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fashion_subset(tmp_path_factory):
    """The first 3000/500 images of Debian's real Fashion-MNIST, as IDX files."""
    from softvq_tf.training.data import load_splits

    if not os.path.isdir(FASHION):
        pytest.fail(f"{FASHION} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    full = load_splits("fashion_mnist", FASHION)
    folder = tmp_path_factory.mktemp("fashion")
    _write_idx(folder / "train-images-idx3-ubyte.gz", full.x_train[:3000, :, :, 0])
    _write_idx(folder / "train-labels-idx1-ubyte.gz", full.y_train[:3000])
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", full.x_eval[:500, :, :, 0])
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", full.y_eval[:500])
    return folder


@pytest.mark.slow
def test_soft_vq_vae_trains_on_real_fashion_mnist(fashion_subset, tmp_path):
    result = run_script(
        [
            "train.py",
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            str(fashion_subset),
            "--steps",
            "300",
            "--epoch-steps",
            "25",
            "--out",
            str(tmp_path),
            "--name",
            "fashion",
            "--quiet",
        ]
    )
    # A successful run prints nothing on stderr, and no TensorFlow log on stdout.
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    assert not [line for line in result.stdout.splitlines() if line.startswith(("I0000", "W0000", "E0000", "WARNING"))]
    assert "settings:" in result.stdout  # the resolved preset is printed at start
    run = tmp_path / "fashion"
    assert (run / "codebook.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    history = json.load(open(run / "history.json"))["history"]["reconstruction_loss"]
    assert history[-1] <= 0.5 * history[0], history
    from softvq_tf.training.data import load_splits
    from softvq_tf.training.export import load_encoder

    z = load_encoder(str(run / "encoder"))(load_splits("fashion_mnist", str(fashion_subset)).x_eval[:32])
    assert z.shape == (32, 64) and np.all(np.isfinite(z))


def test_unknown_dataset_is_one_line():
    assert_one_line_error(run_script(["train.py", "--dataset", "imagenet"]), "unknown dataset", "digits")


def test_codebook_of_size_zero_is_one_line():
    assert_one_line_error(run_script(["train.py", "--K", "0"]), "--K")


@pytest.mark.parametrize("flag, value", [("--latent-dim", "-1"), ("--batch-size", "0"), ("--steps", "0")])
def test_impossible_flags_are_one_line(flag, value):
    assert_one_line_error(run_script(["train.py", flag, value]), flag)


def test_missing_data_dir_is_one_line(tmp_path):
    assert_one_line_error(
        run_script(["train.py", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)]),
        "--data-dir",
        "not a directory",
    )


def test_truncated_idx_file_is_one_line(fashion_subset, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(fashion_subset):
        data = (fashion_subset / name).read_bytes()
        if name.startswith("train-images"):
            data = gzip.compress(gzip.decompress(data)[:-1000])
        (broken / name).write_bytes(data)
    result = run_script(["train.py", "--dataset", "fashion_mnist", "--data-dir", str(broken), "--out", str(tmp_path)])
    assert_one_line_error(result, "truncated", "train-images")
    assert not (tmp_path / "fashion_mnist_soft_vq_d64_K128_seed0").exists()  # nothing half-written


@pytest.mark.slow
def test_tfds_without_network_fails_fast_with_a_hint(tmp_path):
    result = run_script(
        ["train.py", "--dataset", "cifar10", "--out", str(tmp_path)],
        env={"TFDS_DATA_DIR": str(tmp_path / "tfds")},
        timeout=120,
    )
    assert_one_line_error(result, "--data-dir")


@pytest.mark.slow
def test_bfloat16_mixed_precision_trains_and_exports_float32_latents(tmp_path):
    result = run_script(
        [
            "train.py",
            "--precision",
            "mixed_bfloat16",
            "--noise-std",
            "0.2",
            "--steps",
            "20",
            "--latent-dim",
            "8",
            "--K",
            "8",
            "--out",
            str(tmp_path),
            "--name",
            "bf16",
            "--quiet",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from softvq_tf.training.data import load_splits
    from softvq_tf.training.export import load_encoder

    z = load_encoder(str(tmp_path / "bf16" / "encoder"))(load_splits("digits").x_eval[:8])
    assert z.dtype == np.float32 and z.shape == (8, 8) and np.all(np.isfinite(z))


def test_steps_per_execution_defaults_to_a_divisor_and_rejects_impossible_values():
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.errors import UsageError

    assert resolve_config("fashion_mnist", "soft_vq", steps=20000).steps_per_execution == 50
    assert resolve_config("digits", steps=60, epoch_steps=30).steps_per_execution == 30
    assert resolve_config("digits", steps=7).steps_per_execution == 7
    assert resolve_config("digits", distribute="multi_worker").steps_per_execution == 1
    for flags, words in [
        (dict(steps=100, steps_per_execution=30), "must divide --steps"),
        (dict(steps=100, epoch_steps=20, steps_per_execution=25), "must divide --epoch-steps"),
        (dict(steps_per_execution=0), ">= 1"),
        (dict(distribute="multi_worker", steps_per_execution=5), "multi_worker"),
    ]:
        with pytest.raises(UsageError, match=words):
            resolve_config("digits", **flags)


@pytest.mark.parametrize(
    "bottleneck, flag, value",
    [
        ("ae", "--kl-weight", "2"),
        ("info_dropout", "--kl-weight", "2"),
        ("ae", "--noise-std", "0.2"),
        ("vq", "--noise-std", "0.2"),
        ("vae", "--likelihood", "gaussian"),
        ("beta_vae", "--vq-weight", "1"),
        ("vae", "--commitment", "1"),
        ("ae", "--K", "8"),
    ],
)
def test_a_flag_that_does_not_apply_to_the_bottleneck_is_refused(bottleneck, flag, value):
    result = run_script(["train.py", "--bottleneck", bottleneck, flag, value, "--dry-run"])
    assert_one_line_error(result, flag, bottleneck)
    assert result.stdout == ""


def test_dry_run_prints_the_settings_and_run_directory_and_trains_nothing(tmp_path):
    result = run_script(
        [
            "train.py",
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            FASHION,
            "--steps",
            "20000",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path),
            "--dry-run",
        ]
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "steps=20000" in result.stdout and "adam_epsilon=1e-08" in result.stdout
    assert "fashion_mnist_soft_vq_d64_K128_batch64_steps20000_seed0, 25 epochs of 800 steps" in result.stdout
    assert not os.listdir(tmp_path)


def test_steps_without_a_usable_epoch_length_are_refused_with_a_suggestion():
    result = run_script(
        ["train.py", "--dataset", "fashion_mnist", "--data-dir", FASHION, "--steps", "20011", "--dry-run"]
    )
    assert_one_line_error(result, "--steps 20011", "use --steps")
    suggestion = int(result.stderr.split("use --steps ")[1].split(",")[0])
    assert (
        run_script(
            ["train.py", "--dataset", "fashion_mnist", "--data-dir", FASHION, "--steps", str(suggestion), "--dry-run"]
        ).returncode
        == 0
    )


@pytest.mark.slow
def test_verbose_keeps_tensorflows_log(tmp_path):
    result = run_script(
        ["train.py", "--steps", "2", "--out", str(tmp_path), "--quiet", "--verbose"], env={"TF_CPP_MIN_LOG_LEVEL": "0"}
    )
    assert result.returncode == 0 and "I0000" in result.stderr


def test_settings_text_keeps_a_list_value_whole_and_refuses_a_stray_part():
    from softvq_tf.training.config import parse_settings
    from softvq_tf.training.errors import UsageError

    parsed = parse_settings("bottleneck=fsq,fsq_levels=4,4,4,2", "x")
    assert parsed == {"bottleneck": "fsq", "fsq_levels": "4,4,4,2"}
    assert parse_settings("fsq_levels=8,4,4,ema_decay=0.99", "x") == {"fsq_levels": "8,4,4", "ema_decay": 0.99}
    with pytest.raises(UsageError, match="'4' is not a settable"):
        parse_settings("ema_decay=0.99,4", "x")


def test_openmp_threads_wait_passively_unless_the_user_chose_otherwise():
    """scikit-learn's spinning OpenMP threads starve each other beside any other work (training/runtime.py)."""
    code = (
        "import os; from softvq_tf.training.runtime import start_tensorflow; "
        "start_tensorflow(); print(os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    chosen = run_script(["-c", code], env={"OMP_WAIT_POLICY": "ACTIVE"})
    assert (default.stdout.strip(), chosen.stdout.strip()) == ("PASSIVE", "ACTIVE"), default.stderr + chosen.stderr
