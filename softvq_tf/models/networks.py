"""The paper's encoder and decoder networks (Training Setup section).

* ``mlp``: encoder ``D-500-500-2000-d``, decoder ``d-2000-500-500-D``, ReLU,
  sigmoid output (pixels in [0, 1]); used for MNIST-like and small inputs.
* ``cnn``: encoder of four 3x3 stride-2 convolutions with 64-128-256-512
  channels, decoder symmetric with transposed convolutions and a linear output
  (pixels in [-0.5, 0.5]); used for 32x32x3 images.

The encoder has two linear heads: ``z_e`` (``[B, d]``) and, when the bottleneck
needs one, a second head (``[B, head_units]``). Kernels are Glorot uniform and
biases zero, Keras's defaults, written out so that a reader sees the choice.
"""

import math

import keras
import numpy as np

NETWORKS = ("mlp", "cnn")
_INIT = {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
OUTPUT_LAYER = "pixels"  # the decoder's last weighted layer, whose bias start_output_at_data_mean sets


def _dense(units, activation=None, name=None):
    return keras.layers.Dense(units, activation=activation, name=name, **_INIT)


def build_encoder(network, image_shape, latent_dim, head_units=0):
    """Encoder ``image [B, H, W, C] -> z_e [B, d]`` (and ``head [B, head_units]``)."""
    images = keras.Input(shape=image_shape, name="images")
    if network == "mlp":
        h = keras.layers.Flatten()(images)
        for units in (500, 500, 2000):
            h = _dense(units, "relu")(h)
    elif network == "cnn":
        h = images
        for filters in (64, 128, 256, 512):
            h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", **_INIT)(h)
        h = keras.layers.Flatten()(h)
    else:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
    z_e = _dense(latent_dim, name="z_e")(h)
    outputs = [z_e, _dense(head_units, name="head")(h)] if head_units else z_e
    return keras.Model(images, outputs, name="encoder")


def build_decoder(network, image_shape, latent_dim):
    """Decoder ``[B, d] -> reconstruction [B, H, W, C]``."""
    z = keras.Input(shape=(latent_dim,), name="z")
    if network == "mlp":
        h = z
        for units in (2000, 500, 500):
            h = _dense(units, "relu")(h)
        h = _dense(math.prod(image_shape), "sigmoid", name=OUTPUT_LAYER)(h)
        x_hat = keras.layers.Reshape(image_shape)(h)
    elif network == "cnn":
        height, width, channels = image_shape
        if height % 16 or width % 16:
            raise ValueError(f"the cnn needs height and width divisible by 16, got {image_shape}")
        h = _dense((height // 16) * (width // 16) * 512, "relu")(z)
        h = keras.layers.Reshape((height // 16, width // 16, 512))(h)
        for filters in (512, 256, 128):
            h = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu", **_INIT)(h)
        x_hat = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name=OUTPUT_LAYER, **_INIT)(h)
    else:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
    return keras.Model(z, x_hat, name="decoder")


def start_output_at_data_mean(decoder, network, mean_image):
    """Set the decoder's output bias so that its output starts at the training images' mean (``mean_image``).

    The MLP's sigmoid output starts at the logit of each pixel's mean, the CNN's
    linear output at each channel's mean. Without it the first updates all
    push the codes one way (the output starts at 0.5, brighter than most
    images); an FSQ encoder rides that push into tanh's saturation and stays
    there, one code for every image (measured, see docs/reports/modern-quantizers.md).
    """
    mean_image = np.asarray(mean_image, np.float64)
    output = decoder.get_layer(OUTPUT_LAYER)
    if network == "mlp":
        mean = np.clip(mean_image.reshape(-1), 1e-3, 1 - 1e-3)
        bias = np.log(mean / (1 - mean))
    else:
        bias = mean_image.reshape(-1, mean_image.shape[-1]).mean(axis=0)
    output.bias.assign(bias.astype(np.float32))
