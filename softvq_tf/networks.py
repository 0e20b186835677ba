"""Deprecated: the 0.1 home of the paper's networks, now ``softvq_tf.models.networks`` (CHANGELOG.md)."""

import warnings

from softvq_tf.models.networks import NETWORKS, build_decoder, build_encoder  # noqa: F401

warnings.warn(
    "softvq_tf.networks is deprecated and will be removed in 1.0; use softvq_tf.models.networks", DeprecationWarning, 2
)
