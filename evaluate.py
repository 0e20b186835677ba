"""Probe every trained run and print the paper-style table: ``python evaluate.py``.

The same as the ``softvq-evaluate`` command.
"""

from softvq_tf.experiments.evaluate import run

if __name__ == "__main__":
    run()
