"""softvq_tf: soft vector-quantized autoencoders (Wu & Flierl, AAAI 2020) in Keras 3 / TensorFlow."""

__version__ = "0.1.0"

# The six bottlenecks of the paper, in its tables' order.
BOTTLENECKS = ("ae", "vae", "beta_vae", "info_dropout", "vq", "soft_vq")
