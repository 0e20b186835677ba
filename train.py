#!/usr/bin/env python
"""Train one autoencoder and export its encoder: ``python train.py --dataset mnist --bottleneck soft_vq --K 128``."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from softvq_tf.errors import run_cli  # noqa: E402

if __name__ == "__main__":
    from softvq_tf.cli import main

    sys.exit(run_cli(main))
