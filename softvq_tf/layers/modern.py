"""Deprecated: the 0.3 home of FSQ and the SQ-VAE, now ``softvq_tf.layers`` (one family per module; CHANGELOG.md)."""

import warnings

from softvq_tf.layers import *  # noqa: F403
from softvq_tf.layers import __all__  # noqa: F401

warnings.warn(
    "softvq_tf.layers.modern is deprecated and will be removed in 1.0; use softvq_tf.layers",
    DeprecationWarning,
    2,
)
