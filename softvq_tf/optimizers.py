"""Deprecated: the 0.1 home of ``FusedAdam``, now ``softvq_tf.models.optimizers`` (CHANGELOG.md)."""

import warnings

from softvq_tf.models.optimizers import FusedAdam  # noqa: F401

warnings.warn(
    "softvq_tf.optimizers is deprecated and will be removed in 1.0; use softvq_tf.models.optimizers",
    DeprecationWarning,
    2,
)
