"""``python -m softvq_tf.reproduce``: the paper's reproduction under the module name the design names.

The same command as the ``softvq-reproduce`` console script (``softvq_tf.experiments.reproduce``).
"""

from softvq_tf.experiments.reproduce import run

if __name__ == "__main__":
    run()
