"""Every public layer's docstring has ``Call arguments:`` and an ``Example:``, as KerasHub writes them, and the
example runs as written on the loaded backend."""

import inspect
import re
import textwrap

import pytest

import softvq_tf

LAYERS = [
    name
    for name in softvq_tf._PUBLIC["softvq_tf.layers"]
    if inspect.isclass(getattr(softvq_tf, name)) and issubclass(getattr(softvq_tf, name), softvq_tf.Bottleneck)
]


def _examples(name):
    return re.findall(r"```python\n(.*?)```", textwrap.dedent(getattr(softvq_tf, name).__doc__), flags=re.S)


def test_every_public_bottleneck_is_covered():
    assert len(LAYERS) == 8 and "SoftVectorQuantizer" in LAYERS


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "Bottleneck"])
def test_the_docstring_has_call_arguments_and_an_example_that_runs(name, tmp_path, monkeypatch):
    doc = inspect.getdoc(getattr(softvq_tf, name))
    assert "Call arguments:" in doc and "Example:" in doc and "Returns:" in doc
    (example,) = _examples(name)
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(example), f"{name} docstring example", "exec"), {})


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "Bottleneck"])
def test_the_signature_shows_the_real_defaults(name):
    """``help(layer)`` shows every argument with its default, none hidden in a private base's ``**kwargs``."""
    cls = getattr(softvq_tf, name)
    parameters = inspect.signature(cls.__init__).parameters
    assert "seed" in parameters and parameters["seed"].default is None
    config = cls(**({"num_codewords": 8} if "num_codewords" in parameters else {})).get_config()
    for argument, parameter in parameters.items():
        if argument in config and parameter.default not in (inspect.Parameter.empty, None):
            default = parameter.default if argument != "levels" else list(parameter.default)
            assert config[argument] == default, (argument, config[argument], default)
