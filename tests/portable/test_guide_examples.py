"""Every Python block of the layer guide and the site's home page runs as written: the ones marked ``# backend: NAME``
on that backend only (the compiled custom training loops), the others on every backend."""

import pathlib
import re

import keras
import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
PAGES = ("guide/layers.md", "index.md")


def _blocks():
    blocks = [re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S) for page in PAGES]
    return [block for page_blocks in blocks for block in page_blocks]


def _backend_of(block):
    marked = re.match(r"# backend: (\w+)\n", block)
    return marked.group(1) if marked else None


def test_the_guide_has_a_compiled_custom_loop_for_each_backend():
    assert {_backend_of(block) for block in _blocks()} >= {"tensorflow", "jax", "torch"}


# Another backend's loop is not collected here: its own process runs it (tests/test_backends.py).
ON_THIS_BACKEND = [i for i, block in enumerate(_blocks()) if _backend_of(block) in (None, keras.backend.backend())]


@pytest.mark.parametrize("index", ON_THIS_BACKEND)
def test_guide_example_runs(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"docs example {index + 1}", "exec"), {})
