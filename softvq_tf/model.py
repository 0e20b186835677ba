"""Deprecated: the 0.1 home of ``Autoencoder``, now ``softvq_tf.models`` (CHANGELOG.md)."""

import warnings

from softvq_tf.models import *  # noqa: F403
from softvq_tf.models import __all__  # noqa: F401

warnings.warn("softvq_tf.model is deprecated and will be removed in 1.0; use softvq_tf.models", DeprecationWarning, 2)
