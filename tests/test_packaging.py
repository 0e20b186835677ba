"""What the wheel carries: the licence text, the package, and none of this project's machine diagnostics."""

import subprocess
import sys
import zipfile

from conftest import REPO


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
