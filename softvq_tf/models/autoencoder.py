"""The autoencoder: encoder -> bottleneck -> decoder, trained by ``model.fit``.

The loss is the reconstruction term plus whatever the bottleneck adds with
``add_loss``. The reconstruction term is the original notebooks' normalised
MSE, ``mean((x_hat - x)^2) / var(x_train)``, times ``reconstruction_scale``
(the input size for the VAE family and information dropout). A bottleneck
whose method fixes its own reconstruction objective says so in
``reconstruction_objective`` (the SQ-VAE's ``log_sum_squared_error``); the
normalised MSE is then still reported, but not minimised.

The model runs on every Keras backend. Two things stay TensorFlow-only, behind
``softvq_tf.layers.replicas`` and ``compat``: the per-replica loss scaling of
``tf.distribute`` and the multi-worker log reshaping. Its training step, with
the codebook upkeep after the optimizer step, is ``QuantizerTrainStep``'s.
"""

import math

import keras
from keras import ops

from softvq_tf.layers import PACKAGE
from softvq_tf.layers.replicas import replicas_in_sync
from softvq_tf.models.networks import build_decoder, build_encoder
from softvq_tf.models.quantizer_model import QuantizerTrainStep


@keras.saving.register_keras_serializable(package=PACKAGE)
class Autoencoder(QuantizerTrainStep, keras.Model):
    """An autoencoder that differs from its siblings only in ``bottleneck``."""

    def __init__(
        self, network, image_shape, latent_dim, bottleneck, reconstruction_scale=1.0, data_variance=1.0, **kwargs
    ):
        super().__init__(**kwargs)
        if data_variance <= 0:
            raise ValueError(f"data_variance must be > 0, got {data_variance}")
        self.network = network
        self.image_shape = tuple(image_shape)
        self.latent_dim = int(latent_dim)
        self.reconstruction_scale = float(reconstruction_scale)
        self.data_variance = float(data_variance)
        if isinstance(bottleneck, dict):
            bottleneck = keras.saving.deserialize_keras_object(bottleneck)
        self.bottleneck = bottleneck
        self.encoder = build_encoder(network, self.image_shape, self.latent_dim, bottleneck.head_units(self.latent_dim))
        self.decoder = build_decoder(network, self.image_shape, self.latent_dim)
        self.reconstruction_loss = keras.metrics.Mean(name="reconstruction_loss")

    def encode(self, images, training=False):
        """Return ``(z_e [B, d] or a grid of codes, head or None)``."""
        outputs = self.encoder(images, training=training)
        return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs, None)

    def call(self, images, training=None):
        z_e, head = self.encode(images, training=training)
        return self.decoder(self.bottleneck(z_e, head, training=training), training=training)

    def reconstruction_term(self, images, reconstructions):
        """Scaled normalised MSE, averaged over this replica's batch."""
        error = ops.cast(reconstructions, "float32") - ops.cast(images, "float32")
        return self.reconstruction_scale * ops.mean(ops.square(error)) / self.data_variance

    def log_sum_squared_error(self, images, reconstructions):
        """``(D / 2) log(mean_b sum_pixels (x_hat - x)^2)``: the Gaussian likelihood with the decoder
        variance at its maximum-likelihood value, as the SQ-VAE authors train (their ``flg_arelbo``)."""
        error = ops.cast(reconstructions, "float32") - ops.cast(images, "float32")
        pixels = math.prod(self.image_shape)
        per_sample = ops.sum(ops.reshape(ops.square(error), (-1, pixels)), axis=-1)
        return 0.5 * float(pixels) * ops.log(ops.mean(per_sample))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = x if y is None else y
        reconstruction = self.reconstruction_term(target, y_pred)
        self.reconstruction_loss.update_state(reconstruction)
        objective = self.bottleneck.reconstruction_objective
        if objective == "log_sum_squared_error":
            reconstruction = self.log_sum_squared_error(target, y_pred)
        self.update_deferred_metrics()  # JAX: the layer's metrics, in this scope that maps them
        total = reconstruction
        for loss in self.losses:  # in order, as tf.add_n sums them
            total = total + ops.cast(loss, "float32")
        # Gradients are summed over replicas: scale each replica's mean so the
        # sum is the global mean, as Keras does for compiled losses.
        return total / replicas_in_sync()

    def get_config(self):
        return {
            **super().get_config(),
            "network": self.network,
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "bottleneck": keras.saving.serialize_keras_object(self.bottleneck),
            "reconstruction_scale": self.reconstruction_scale,
            "data_variance": self.data_variance,
        }
