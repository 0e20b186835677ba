"""The bottleneck layers, the codebook upkeep and the codebook metrics: Keras layers you can use in any model.

One family per module: ``base`` (``Bottleneck``, ``IdentityBottleneck``),
``gaussian`` (the VAE family, information dropout), ``quantizer`` (the
codebook quantizers' base), ``vector_quantizer`` (hard VQ, the rotation trick),
``soft_vector_quantizer``, ``fsq``, ``sqvae``; ``codebook`` (the upkeep),
``metrics``, ``distances`` (the shared ops), ``rules`` (option values) and
``registry`` (every bottleneck by name, ``make_bottleneck``).

``registry`` and ``rules`` are plain Python. The layers load, with Keras and
its backend, on the first use of any public name here, all families together,
so that every layer is registered for ``keras.saving.load_model``.
"""

import importlib

_HOME = {
    "Bottleneck": "softvq_tf.layers.base",
    "IdentityBottleneck": "softvq_tf.layers.base",
    "GaussianBottleneck": "softvq_tf.layers.gaussian",
    "InformationDropout": "softvq_tf.layers.gaussian",
    "VectorQuantizer": "softvq_tf.layers.vector_quantizer",
    "rotate_to": "softvq_tf.layers.vector_quantizer",
    "SoftVectorQuantizer": "softvq_tf.layers.soft_vector_quantizer",
    "FiniteScalarQuantizer": "softvq_tf.layers.fsq",
    "StochasticVectorQuantizer": "softvq_tf.layers.sqvae",
    "CodebookUpkeep": "softvq_tf.layers.codebook",
    "PACKAGE": "softvq_tf.layers.metrics",
    "CodebookPerplexity": "softvq_tf.layers.metrics",
    "CodewordsInUse": "softvq_tf.layers.metrics",
    "most_probable_one_hot": "softvq_tf.layers.metrics",
    "make_bottleneck": "softvq_tf.layers.registry",
}
__all__ = sorted(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module 'softvq_tf.layers' has no attribute {name!r}")
    for module in dict.fromkeys(_HOME.values()):  # every family, so that every layer is registered
        importlib.import_module(module)
    return getattr(importlib.import_module(_HOME[name]), name)


def __dir__():
    return sorted(set(globals()) | set(_HOME))
