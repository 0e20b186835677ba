"""Train one autoencoder and export its encoder: ``python train.py --dataset mnist --bottleneck soft_vq --K 128``.

The same as the ``softvq-train`` command.
"""

from softvq_tf.training.cli import run

if __name__ == "__main__":
    run()
