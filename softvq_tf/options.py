"""The names the package offers and the rule for every option value, in plain Python.

The layers check their constructor arguments with these rules, and the
training configuration checks its fields with the same ones before TensorFlow
loads (so a bad flag fails in a fraction of a second, in one line). Each rule
is written once, here.
"""

import dataclasses

# The six bottlenecks of the paper, in its tables' order.
BOTTLENECKS = ("ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq")
QUANTIZERS = ("vq", "soft_vq")
# Quantizers published after the paper: offered beside its six, not part of its tables.
MODERN_BOTTLENECKS = ("fsq", "sqvae")
# Everything with a codebook of K codewords (FSQ's codebook is implicit, its size set by its levels).
CODEBOOK_BOTTLENECKS = (*QUANTIZERS, "sqvae")
GRADIENT_ESTIMATORS = ("straight_through", "rotation")
# Where the decoder's output bias starts (the notebooks': zeros).
OUTPUT_BIASES = ("zeros", "data_mean")
# How FSQ's output projection bias starts: Keras's zeros, or PyTorch nn.Linear's uniform in +-1/sqrt(n).
FSQ_PROJECT_OUT_BIASES = ("zeros", "uniform")
# The soft quantizer's weights: the notebooks' "+ s_k" or the textbook Gaussian "- d s_k".
LIKELIHOODS = ("original", "gaussian")
NETWORKS = ("mlp", "cnn", "conv_grid")


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
    "num_codewords": at_least(1),
    "kl_weight": at_least(0),
    "commitment": at_least(0),
    "vq_weight": at_least(0),
    "noise_std": at_least(0),
    "likelihood": one_of(LIKELIHOODS),
    "ema_decay": within(0, 1),
    "ema_epsilon": above(0),
    "dead_code_steps": at_least(1),
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


# Help of --any-cpu (reproduce, sweep): a stored score is otherwise reused only on the CPU kind that made it.
ANY_CPU_HELP = (
    "reuse scores stored from another CPU's instruction set (same code, path and settings: the weights differ "
    "only in rounding, and each run's table line names its CPU)"
)
