"""Every Python block of the README's section on the layers runs as written, on the loaded backend."""

import pytest

from tests.test_readme import README, _section


def _layer_section_blocks():
    import re

    return re.findall(r"```python\n(.*?)```", _section(README.read_text(), "## The layers"), flags=re.S)


def test_the_layer_section_has_examples():
    assert len(_layer_section_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(_layer_section_blocks())))
def test_readme_layer_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_layer_section_blocks()[index], f"README.md, layer example {index + 1}", "exec"), {})
