"""Every Python block of the README's section on the layers runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _layer_section_blocks():
    text = README.read_text()
    section = text.split("\n## The layers\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_layer_section_has_examples():
    assert len(_layer_section_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_layer_section_blocks())))
def test_readme_layer_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_layer_section_blocks()[index], f"README.md, layer example {index + 1}", "exec"), {})
