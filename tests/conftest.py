import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # what the command-line tools set: fatal messages only
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command-line tools set it (training/runtime.py)

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist (.ci/run installs it)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One tiny soft VQ-VAE run on the bundled digits, shared by the tests that need a run."""
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.fit import train

    out = tmp_path_factory.mktemp("runs")
    config = resolve_config("digits", "soft_vq", steps=60, epoch_steps=30, out=str(out), latent_dim=8, num_codewords=8)
    return train(config, verbose=0, log=lambda *a: None).run_dir


def run_script(args, env=None, timeout=600, cwd=None):
    """Run ``python args...`` from the repository root (the installed package); returns the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result, *words):
    """Exit code 2, and stderr is exactly one ``error:`` line naming ``words`` (no traceback, no TensorFlow log)."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
