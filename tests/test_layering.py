"""The package's three layers: each module imports only from its own layer or those below it."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "softvq_tf"
# Bottom to top. compat holds no softvq_tf imports of its own; the package root and its deprecated 0.x
# modules (options, bottlenecks, model, ...) re-export from the layers below them.
RANK = {"compat": 0, "layers": 1, "models": 2, "training": 3, "experiments": 4}


# The layers' modules that load neither Keras nor TensorFlow.
PLAIN = ("softvq_tf.layers.registry", "softvq_tf.layers.rules")


def _rank(module):
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def _imports(path):
    """Every softvq_tf module that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("softvq_tf"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("softvq_tf"))
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_its_own(path):
    module = "softvq_tf." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).replace(".__init__", "")
    own = _rank(module)
    if own is None:  # the package root: it re-exports the layers and models lazily
        return
    upward = sorted(m for m in _imports(path) if (_rank(m) or 0) > own)
    assert not upward, f"{module} imports from a layer above it: {upward}"


def _loaded_after(statement):
    """The softvq_tf modules loaded, and whether TensorFlow or Keras is, after ``statement`` in a new process."""
    code = (
        f"import sys, json; {statement}; "
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('softvq_tf')), "
        "'tensorflow' in sys.modules or 'keras' in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_layers_loads_nothing_of_training_or_experiments():
    modules, _ = _loaded_after("import softvq_tf.layers")
    assert modules and all(_rank(m) in (None, 0, 1) for m in modules), modules


def test_the_public_api_is_at_the_package_root():
    modules, _ = _loaded_after("from softvq_tf import SoftVectorQuantizer, VectorQuantizer, Autoencoder, FusedAdam")
    assert "softvq_tf.layers.soft_vector_quantizer" in modules and not any(_rank(m) in (3, 4) for m in modules), modules


def test_the_command_line_checks_flags_before_tensorflow_loads():
    modules, tensorflow = _loaded_after(
        "from softvq_tf.training.cli import train_parser; from softvq_tf.training.config import resolve_config; "
        "resolve_config(**{k: v for k, v in vars(train_parser().parse_args(['--K', '8'])).items() "
        "if k not in ('quiet', 'dry_run', 'verbose')})"
    )
    # The registry and the option rules are plain Python: no layer module, no Keras, no TensorFlow.
    assert not tensorflow and not any(m.startswith("softvq_tf.layers.") and m not in PLAIN for m in modules), modules


def test_scoring_alone_can_reload_a_saved_autoencoder():
    # code_latents loads a run's autoencoder.keras, so importing the scoring must register the Autoencoder.
    modules, _ = _loaded_after("import softvq_tf.experiments.scoring")
    assert "softvq_tf.models.autoencoder" in modules, modules
