"""softvq_tf: soft vector-quantized autoencoders (Wu & Flierl, AAAI 2020) in Keras 3 / TensorFlow.

Three layers, each importing only from those below it:

- ``softvq_tf.layers``: the bottleneck layers, the codebook upkeep, the metrics;
- ``softvq_tf.models``: the paper's networks, the ``Autoencoder``, ``FusedAdam``;
- ``softvq_tf.training`` (configuration, data, ``model.fit``, export) and, on
  top, ``softvq_tf.experiments`` (probes, scores, tables, reproduce, sweep, bench).

The public layers and the model are importable from here
(``from softvq_tf import SoftVectorQuantizer``). They load on first use, so
the command-line tools can check their input before TensorFlow starts.
"""

import importlib

__version__ = "0.4.0"

_PUBLIC = {
    "softvq_tf.layers": (
        "Bottleneck",
        "IdentityBottleneck",
        "GaussianBottleneck",
        "InformationDropout",
        "VectorQuantizer",
        "SoftVectorQuantizer",
        "FiniteScalarQuantizer",
        "StochasticVectorQuantizer",
        "make_bottleneck",
        "CodebookUpkeep",
        "CodebookPerplexity",
        "CodewordsInUse",
    ),
    "softvq_tf.models": ("Autoencoder", "QuantizerModel", "FusedAdam", "build_encoder", "build_decoder"),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = ["BOTTLENECKS", *_HOME]


def __getattr__(name):
    if name == "BOTTLENECKS":  # the paper's six bottlenecks, by name (the registry has them all)
        return importlib.import_module("softvq_tf.layers.registry").PAPER_NAMES
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'softvq_tf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOME))
