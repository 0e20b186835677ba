"""The bottleneck registry: one entry per bottleneck, read by make_bottleneck, the configuration and the tables."""

import ast
import pathlib

import pytest

from softvq_tf.layers import Bottleneck, make_bottleneck, registry
from softvq_tf.training import config as run_config

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "softvq_tf"
MAX_MODULE_LINES = 400


# A value other than the layer's default for every setting a bottleneck may take.
SAMPLE = dict(
    num_codewords=4,
    kl_weight=2.0,
    commitment=1.5,
    vq_weight=1.25,
    noise_std=0.1,
    likelihood="gaussian",
    ema_decay=0.9,
    kmeans_init=True,
    dead_code_steps=3,
    gradient_estimator="rotation",
    fsq_levels="4,3",
    fsq_project_out_bias="uniform",
    temperature_decay=1e-4,
    soft_decode="most_probable",
    hardening_steps=50,
    entropy_weight=0.01,
    usage_weight=0.02,
)
AS_CONFIG = {"fsq_levels": [4, 3]}  # how get_config writes a value back


def test_every_layer_setting_has_a_sample():
    assert set(SAMPLE) == set(registry.LAYER_SETTINGS)


@pytest.mark.parametrize("entry", registry.ENTRIES, ids=lambda e: e.name)
def test_every_entry_builds_its_layer_with_each_of_its_settings(entry):
    assert issubclass(entry.layer_class(), Bottleneck)
    # ema_decay and gradient_estimator are vq's; the soft quantizer has no EMA codebook.
    settings = {setting: SAMPLE[setting] for setting in entry.settings}
    layer = make_bottleneck(entry.name, **settings, seed=0, name=f"my_{entry.name}")
    assert type(layer) is entry.layer_class() and layer.name == f"my_{entry.name}"
    written = layer.get_config()
    for setting, argument in entry.settings.items():
        assert written[argument] == AS_CONFIG.get(setting, SAMPLE[setting]), setting
    # The defaults an entry gives the configuration are its own settings, or settings of every run.
    for name in (*entry.defaults, *entry.preset_defaults, *(v for d in entry.network_defaults.values() for v in d)):
        assert name in entry.settings or name not in registry.LAYER_SETTINGS, name


def test_a_setting_that_does_not_apply_is_refused_in_one_line_naming_it():
    with pytest.raises(ValueError, match=r"^kl_weight does not apply to vq \(its settings: num_codewords, "):
        make_bottleneck("vq", num_codewords=8, kl_weight=1.0)
    with pytest.raises(ValueError, match=r"^num_codewords does not apply to fsq"):
        make_bottleneck("fsq", num_codewords=64)  # FSQ's codebook size is its levels' product
    with pytest.raises(ValueError, match=r"^unknown bottleneck setting\(s\) colour"):
        make_bottleneck("ae", colour=1)
    with pytest.raises(ValueError, match=r"^unknown bottleneck 'pca'; choose one of ae, vae, "):
        make_bottleneck("pca")


def test_two_bottlenecks_from_make_bottleneck_can_share_a_model():
    first, second = make_bottleneck("vq", num_codewords=4), make_bottleneck("vq", num_codewords=4)
    assert first.name != second.name
    assert make_bottleneck("fsq", fsq_levels="4,3").levels == (4, 3)


def test_the_configuration_reads_which_settings_apply_from_the_registry():
    for setting, users in run_config.APPLIES_TO.items():
        assert users == registry.applies_to(setting) and users, setting
    assert set(run_config.LAYER_OPTIONS) == set(registry.LAYER_SETTINGS)
    preset = run_config.resolve_config("svhn", registry.PROPOSED)
    assert preset.num_codewords == 32 and preset.steps == 10_000  # the soft VQ-VAE's preset fields
    assert run_config.resolve_config("svhn", "vq").num_codewords == 512


def _string_constants(path):
    """The string literals of a module, less its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


# Deprecated 0.x modules keep the names they always exported.
DEPRECATED = {"options.py"}


def test_a_bottlenecks_name_is_written_only_in_the_registry():
    names = set(registry.NAMES)
    found = [
        f"{path.relative_to(PACKAGE)}:{line} {value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "registry.py" and str(path.relative_to(PACKAGE)) not in DEPRECATED
        for line, value in _string_constants(path)
        if value in names
    ]
    assert not found, found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES
