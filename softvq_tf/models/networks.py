"""The paper's encoder and decoder networks (Training Setup section).

* ``mlp``: encoder ``D-500-500-2000-d``, decoder ``d-2000-500-500-D``, ReLU,
  sigmoid output (pixels in [0, 1]); used for MNIST-like and small inputs.
* ``cnn``: encoder of four 3x3 stride-2 convolutions with 64-128-256-512
  channels, decoder symmetric with transposed convolutions and a linear output
  (pixels in [-0.5, 0.5]); used for 32x32x3 images.
* ``conv_grid`` (not in the paper): a grid of codes, as VQ-VAEs are used as
  image tokenizers (van den Oord et al. 2017, their CIFAR-10 model at a CPU's
  width): two 4x4 stride-2 convolutions (64, 128 channels), a 3x3
  convolution and two residual blocks (ReLU, 3x3, ReLU, 1x1), then 1x1 heads,
  so ``z_e`` is ``[B, H/4, W/4, d]`` (7 x 7 on 28 x 28 images, 8 x 8 on 32 x
  32); the decoder mirrors it with transposed convolutions and a linear output.

The encoder has two linear heads: ``z_e`` (``[B, d]``, or ``[B, H/4, W/4, d]``
for ``conv_grid``) and, when the bottleneck needs one, a second head with the
same leading axes (``[..., head_units]``). Kernels are Glorot uniform and
biases zero, Keras's defaults, written out so that a reader sees the choice.
"""

import math

import keras
import numpy as np

NETWORKS = ("mlp", "cnn", "conv_grid")
GRID_CHANNELS = (64, 128)  # conv_grid: the two strided convolutions; the residual blocks keep the second
_INIT = {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
OUTPUT_LAYER = "pixels"  # the decoder's last weighted layer, whose bias start_output_at_data_mean sets


def _dense(units, activation=None, name=None):
    return keras.layers.Dense(units, activation=activation, name=name, **_INIT)


def _conv(filters, size, name=None, activation=None, strides=1, transpose=False):
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer(filters, size, strides=strides, padding="same", activation=activation, name=name, **_INIT)


def _residual_stack(h, blocks=2):
    """van den Oord et al.'s residual blocks: ``h + conv1x1(relu(conv3x3(relu(h))))``, then a ReLU."""
    channels = h.shape[-1]
    for _ in range(blocks):
        r = keras.layers.ReLU()(h)
        r = _conv(channels // 2, 3, activation="relu")(r)
        h = keras.layers.Add()([h, _conv(channels, 1)(r)])
    return keras.layers.ReLU()(h)


def grid_shape(image_shape):
    """The code grid ``(H/4, W/4)`` of ``conv_grid`` for ``image_shape`` (refused unless H and W divide by 4)."""
    height, width = image_shape[:2]
    if height % 4 or width % 4:
        raise ValueError(f"conv_grid needs height and width divisible by 4, got {tuple(image_shape)}")
    return height // 4, width // 4


def build_encoder(network, image_shape, latent_dim, head_units=0):
    """Encoder ``image [B, H, W, C] -> z_e [B, d]`` (and ``head [B, head_units]``); ``conv_grid``: a grid of both."""
    images = keras.Input(shape=image_shape, name="images")
    if network == "conv_grid":
        grid_shape(image_shape)
        h = images
        for filters in GRID_CHANNELS:
            h = _conv(filters, 4, activation="relu", strides=2)(h)
        h = _residual_stack(_conv(GRID_CHANNELS[-1], 3)(h))
        z_e = _conv(latent_dim, 1, name="z_e")(h)  # [B, H/4, W/4, d]
        outputs = [z_e, _conv(head_units, 1, name="head")(h)] if head_units else z_e
        return keras.Model(images, outputs, name="encoder")
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
    """Decoder ``[B, d] -> reconstruction [B, H, W, C]`` (``conv_grid``: from the grid ``[B, H/4, W/4, d]``)."""
    if network == "conv_grid":
        z = keras.Input(shape=(*grid_shape(image_shape), latent_dim), name="z")
        h = _residual_stack(_conv(GRID_CHANNELS[-1], 3)(z))
        h = _conv(GRID_CHANNELS[0], 4, activation="relu", strides=2, transpose=True)(h)
        x_hat = _conv(image_shape[-1], 4, name=OUTPUT_LAYER, strides=2, transpose=True)(h)
        return keras.Model(z, x_hat, name="decoder")
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
    and conv_grid's linear output at each channel's mean. Without it the first updates all
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
