"""The paper's networks, the autoencoder model and its optimizer (built on ``softvq_tf.layers``)."""

from softvq_tf.models.autoencoder import Autoencoder
from softvq_tf.models.networks import build_decoder, build_encoder
from softvq_tf.models.optimizers import FusedAdam
from softvq_tf.models.quantizer_model import QuantizerModel

__all__ = ["Autoencoder", "FusedAdam", "QuantizerModel", "build_decoder", "build_encoder"]
