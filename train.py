#!/usr/bin/env python
"""Train one autoencoder and export its encoder: ``python train.py --dataset mnist --bottleneck soft_vq --K 128``."""

import sys

from softvq_tf.errors import run_cli

if __name__ == "__main__":
    from softvq_tf.cli import main

    sys.exit(run_cli(main))
