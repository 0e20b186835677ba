"""What the wheel carries: the licence text, the package, and none of this project's machine diagnostics."""

import pathlib
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO, assert_one_line_error, run_script


def test_the_wheel_holds_the_licence_and_not_the_benchmarks(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path]
    result = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("softvq_tf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    licences = [n for n in names if n.endswith("LICENSE")]
    assert licences, names
    text = zipfile.ZipFile(wheel).read(licences[0]).decode()
    assert "Apache License" in text and "Version 2.0" in text
    assert "softvq_tf/layers/soft_vector_quantizer.py" in names
    assert not [n for n in names if n.startswith(("benchmarks/", "tests/")) or "steadiness" in n], names


def test_the_base_install_asks_for_no_tensorflow_and_the_train_extra_does():
    import tomllib

    project = tomllib.loads((pathlib.Path(REPO) / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert "keras" in base and not any(name in base for name in ("tensorflow", "tensorboard", "matplotlib"))
    train = " ".join(project["optional-dependencies"]["train"]).lower()
    assert "tensorflow==" in train and "tensorflow-datasets" in train


COMMANDS = ["training.cli", "experiments.evaluate", "experiments.reproduce", "experiments.sweep", "experiments.claims"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_without_the_train_extra_says_so_in_one_line(command):
    """What a base install gets (.ci/base-install installs one for real, in CI): the modules of the
    extra are made unimportable, and the console script's entry point must neither import them nor trace back."""
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['tensorflow', 'tensorflow_datasets', 'scipy', 'matplotlib'])); "
        f"sys.argv = ['softvq-cmd']; from softvq_tf.{command} import run; run()"
    )
    assert_one_line_error(run_script(["-c", code]), "softvq-cmd", "softvq_tf[train]", "tensorflow")
