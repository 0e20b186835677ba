"""Deprecated: the 0.1 home of the bottleneck layers, now ``softvq_tf.layers`` (CHANGELOG.md)."""

import warnings

from softvq_tf.layers import *  # noqa: F403
from softvq_tf.layers import __all__  # noqa: F401

warnings.warn(
    "softvq_tf.bottlenecks is deprecated and will be removed in 1.0; use softvq_tf.layers", DeprecationWarning, 2
)
