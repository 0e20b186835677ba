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
    assert warnings == ["warning: --checkpoint-every is deprecated and will be removed; use --epoch-steps"]
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
    ],
)
def test_the_01_modules_still_import_with_a_warning(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* use {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
