"""Deprecated: the 0.3 home of the bottleneck names and option rules (CHANGELOG.md).

The rules are ``softvq_tf.layers.rules``; the names come from the bottleneck
registry, ``softvq_tf.layers.registry``.
"""

import warnings

from softvq_tf.layers import registry
from softvq_tf.layers.rules import *  # noqa: F403
from softvq_tf.layers.rules import LAYER_RULES, Rule, check_layer_options, parse_levels  # noqa: F401
from softvq_tf.models.networks import NETWORKS  # noqa: F401

BOTTLENECKS = registry.PAPER_NAMES
MODERN_BOTTLENECKS = tuple(name for name in registry.NAMES if name not in BOTTLENECKS)
QUANTIZERS = registry.applies_to("commitment")
CODEBOOK_BOTTLENECKS = registry.applies_to("num_codewords")
OUTPUT_BIASES = ("zeros", "data_mean")

warnings.warn(
    "softvq_tf.options is deprecated and will be removed in 1.0; use softvq_tf.layers.rules and "
    "softvq_tf.layers.registry",
    DeprecationWarning,
    2,
)
