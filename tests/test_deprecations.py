"""Names renamed since 0.1 keep working, each with a DeprecationWarning that names its new name (CHANGELOG.md)."""

import importlib
import sys

import pytest
from conftest import run_script


def test_checkpoint_every_is_epoch_steps_with_a_warning():
    from softvq_tf.training.cli import train_parser

    with pytest.warns(DeprecationWarning, match="--checkpoint-every .* use --epoch-steps"):
        args = train_parser().parse_args(["--checkpoint-every", "250"])
    assert args.epoch_steps == 250


def test_checkpoint_every_on_the_command_line_prints_one_warning_line_and_runs():
    result = run_script(["train.py", "--checkpoint-every", "250", "--dry-run"])
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "checkpoint-every" in line]
    assert warnings == ["warning: --checkpoint-every is deprecated and will be removed in 1.0; use --epoch-steps"]
    assert "epoch_steps=250" in result.stdout


@pytest.mark.parametrize("name", ["VectorQuantizer", "SoftVectorQuantizer"])
def test_weight_is_vq_weight_with_a_warning(name):
    import softvq_tf

    with pytest.warns(DeprecationWarning, match=rf"{name}\(weight=\.\.\.\) .* use vq_weight="):
        layer = getattr(softvq_tf, name)(8, weight=1.5)
    assert layer.vq_weight == 1.5 and layer.get_config()["vq_weight"] == 1.5


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("softvq_tf.bottlenecks", "softvq_tf.layers", "SoftVectorQuantizer"),
        ("softvq_tf.model", "softvq_tf.models", "Autoencoder"),
        ("softvq_tf.networks", "softvq_tf.models.networks", "build_encoder"),
        ("softvq_tf.optimizers", "softvq_tf.models.optimizers", "FusedAdam"),
        ("softvq_tf.layers.bottlenecks", "softvq_tf.layers", "VectorQuantizer"),
        ("softvq_tf.layers.modern", "softvq_tf.layers", "FiniteScalarQuantizer"),
        ("softvq_tf.layers.factory", "softvq_tf.layers", "make_bottleneck"),
        ("softvq_tf.options", "softvq_tf.layers.rules", "check_layer_options"),
    ],
)
def test_the_0x_modules_still_import_with_a_warning_naming_the_version_that_removes_them(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated and will be removed in 1.0; use {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_the_options_module_keeps_its_names():
    sys.modules.pop("softvq_tf.options", None)
    with pytest.warns(DeprecationWarning):
        options = importlib.import_module("softvq_tf.options")
    assert options.BOTTLENECKS == ("ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq")
    assert options.MODERN_BOTTLENECKS == ("fsq", "sqvae") and options.QUANTIZERS == ("vq", "soft_vq")
    assert options.CODEBOOK_BOTTLENECKS == ("vq", "soft_vq", "sqvae") and options.NETWORKS == (
        "mlp",
        "cnn",
        "conv_grid",
    )


def test_softvq_bench_says_where_the_benchmark_went():
    result = run_script(["-c", "from softvq_tf.experiments.command_line import moved_bench; moved_bench()"])
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: softvq-bench moved out of the installed package in 0.4; run `python -m benchmarks.bench` from a "
        "clone of the repository"
    ]
