"""The training application: configuration, data, ``model.fit`` under ``tf.distribute``, export, the run directory.

Its modules import TensorFlow only where they need it, so ``softvq-train``
checks its flags and data before TensorFlow starts.
"""
