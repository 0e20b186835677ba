"""The rule every layer option's value must satisfy, in plain Python.

The layers check their constructor arguments with these rules; the training
configuration checks its flags with the same ones before TensorFlow loads, so
a bad flag fails in one line. Each rule is written once, here.
"""

import dataclasses
import numbers

GRADIENT_ESTIMATORS = ("straight_through", "rotation")
# How FSQ's output projection bias starts: Keras's zeros, or PyTorch nn.Linear's uniform in +-1/sqrt(n).
FSQ_PROJECT_OUT_BIASES = ("zeros", "uniform")
# The soft quantizer's weights: the notebooks' "+ s_k" or the textbook Gaussian "- d s_k".
LIKELIHOODS = ("original", "gaussian")
# What the soft quantizer's decoder reads: the posterior mean (the paper's), the most probable codeword, a sample.
DECODES = ("posterior_mean", "most_probable", "sample")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A value rule: ``check(value, name)`` raises ``ValueError("NAME must be ..., got VALUE")``.

    ``None`` always passes: it means "not set" (the layer's or preset's default).
    """

    describe: str
    holds: callable
    choices: tuple = None

    def check(self, value, name):
        if value is not None and not self.holds(value):
            raise ValueError(f"{name} must be {self.describe}, got {value!r}")


def at_least(bound):
    return Rule(f">= {bound:g}", lambda v: v >= bound)


def _whole(value):
    """An integer, or a float with no fractional part; never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())


def whole_number_at_least(bound):
    """An integer ``>= bound`` (``8`` or ``8.0``, never ``2.5`` or ``True``)."""
    return Rule(f"a whole number >= {bound:g}", lambda v: _whole(v) and v >= bound)


def above(bound):
    return Rule(f"> {bound:g}", lambda v: v > bound)


def within(low, high):
    """The open interval ``(low, high)``."""
    return Rule(f"in ({low:g}, {high:g})", lambda v: low < v < high)


def half_open(low, high):
    """``[low, high)``."""
    return Rule(f"in [{low:g}, {high:g})", lambda v: low <= v < high)


def one_of(choices):
    return Rule(f"one of {', '.join(choices)}", lambda v: v in choices, tuple(choices))


# The layers' options, by their constructor argument names.
LAYER_RULES = {
    "num_codewords": whole_number_at_least(1),
    "kl_weight": at_least(0),
    "commitment": at_least(0),
    "vq_weight": at_least(0),
    "noise_std": at_least(0),
    "likelihood": one_of(LIKELIHOODS),
    "decode": one_of(DECODES),
    "hardening_steps": whole_number_at_least(1),
    "entropy_weight": at_least(0),
    "usage_weight": at_least(0),
    "ema_decay": within(0, 1),
    "ema_epsilon": above(0),
    "dead_code_steps": whole_number_at_least(1),
    "alpha_max": above(0),
    "gradient_estimator": one_of(GRADIENT_ESTIMATORS),
    "temperature_decay": at_least(0),
    "temperature_init": above(0),
    "temperature_min": at_least(0),
    "levels": Rule(
        "a sequence of at least one integer >= 2",
        lambda v: len(v) >= 1 and all(int(x) == x and x >= 2 for x in v),
    ),
    "project_out_bias": one_of(FSQ_PROJECT_OUT_BIASES),
}


def parse_levels(text):
    """FSQ levels written as text, ``"8,4,4"`` -> ``(8, 4, 4)`` (``ValueError`` if a part is not an integer)."""
    return tuple(int(part) for part in str(text).split(","))


def check_layer_options(**options):
    """Check each named layer option against ``LAYER_RULES`` (``ValueError`` naming the first bad one)."""
    for name, value in options.items():
        LAYER_RULES[name].check(value, name)
