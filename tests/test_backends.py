"""The portable suite (``tests/portable``: shapes, NumPy references, models, the README's layer examples) on JAX
and PyTorch, each in its own process with TensorFlow made unimportable. TensorFlow runs it in this process."""

import importlib.util
import sys

import pytest
from conftest import REPO, run_script


# The day-to-day subset (-m "not slow") runs the layers on one backend besides TensorFlow, PyTorch (the
# fastest here); the full suite runs JAX too.
@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.slow), "torch"])
def test_the_portable_suite_passes_without_tensorflow(backend):
    assert importlib.util.find_spec(backend), f"{backend} is missing: pip install -r requirements.txt installs it"
    env = {"KERAS_BACKEND": backend, "SOFTVQ_WITHOUT_TENSORFLOW": "1", "PYTHONPATH": REPO}
    args = ["-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--durations=0", "tests/portable"]
    result = run_script(args, env=env, timeout=900)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    summary = [line for line in result.stdout.splitlines() if " passed" in line][-1]
    assert "failed" not in summary and "skipped" not in summary, summary
    sys.stdout.write(f"{backend}: {summary}\n")


@pytest.mark.slow
def test_the_device_check_trains_on_jax_without_tensorflow(tmp_path):
    """The GPU check's timed fit, short, on the CPU: what CI can run of it (the portable suite runs above)."""
    report = tmp_path / "device.md"
    code = (
        "import sys; sys.modules['tensorflow'] = None; "
        "from softvq_tf.experiments.device_check import main; "
        f"sys.exit(main(['--steps', '60', '--epochs', '1', '--skip-tests', '--output', '{report}']))"
    )
    result = run_script(["-c", code], env={"KERAS_BACKEND": "jax"}, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    text = report.read_text()
    assert "jax backend" in text and "steps/s" in text and "codewords in use" in text, text
