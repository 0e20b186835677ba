"""The portable suite runs on whichever Keras backend ``KERAS_BACKEND`` names.

``tests/test_backends.py`` runs it under JAX and PyTorch with
``SOFTVQ_WITHOUT_TENSORFLOW=1``, which makes ``import tensorflow`` fail, so a
layer that still reached for TensorFlow would fail there.
"""

import os
import sys

if os.environ.get("SOFTVQ_WITHOUT_TENSORFLOW") == "1":
    sys.modules["tensorflow"] = None  # import tensorflow -> ImportError
