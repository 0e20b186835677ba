"""The bottleneck layers, the codebook upkeep and the codebook metrics: Keras layers you can use in any model.

Importing this package loads TensorFlow and Keras only; nothing of training or
experiments.
"""

from softvq_tf.layers.bottlenecks import (
    Bottleneck,
    GaussianBottleneck,
    IdentityBottleneck,
    InformationDropout,
    SoftVectorQuantizer,
    VectorQuantizer,
    rotate_to,
)
from softvq_tf.layers.codebook import CodebookUpkeep
from softvq_tf.layers.factory import make_bottleneck
from softvq_tf.layers.metrics import PACKAGE, CodebookPerplexity, CodewordsInUse, most_probable_one_hot
from softvq_tf.layers.modern import FiniteScalarQuantizer, StochasticVectorQuantizer

__all__ = [
    "PACKAGE",
    "Bottleneck",
    "FiniteScalarQuantizer",
    "CodebookPerplexity",
    "CodebookUpkeep",
    "CodewordsInUse",
    "GaussianBottleneck",
    "IdentityBottleneck",
    "InformationDropout",
    "SoftVectorQuantizer",
    "StochasticVectorQuantizer",
    "VectorQuantizer",
    "make_bottleneck",
    "rotate_to",
    "most_probable_one_hot",
]
