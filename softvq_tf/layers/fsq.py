"""Finite scalar quantization (Mentzer et al., ICLR 2024): an implicit codebook, no auxiliary loss."""

import math

import keras
import numpy as np
from keras import ops

from softvq_tf.layers.base import Bottleneck
from softvq_tf.layers.distances import as_rows, leading_shape_of
from softvq_tf.layers.metrics import PACKAGE, CodebookPerplexity, CodewordsInUse
from softvq_tf.layers.rules import check_layer_options, parse_levels


@keras.saving.register_keras_serializable(package=PACKAGE)
class FiniteScalarQuantizer(Bottleneck):
    """Finite scalar quantization (Mentzer et al., ICLR 2024): an implicit codebook of ``prod(levels)`` codes.

    ``z_e [..., d]`` is projected to ``len(levels)`` dimensions (at each position); dimension ``i``
    is bounded to ``L_i`` levels, ``tanh(z + shift) * h - offset`` with
    ``h = (L_i - 1)(1 - 1e-3) / 2``, ``offset = 0.5`` for even ``L_i`` (else 0)
    and ``shift = tan(offset / h)`` as in the paper's appendix A.1, then
    rounded with a straight-through gradient and scaled to ``[-1, 1]``; a
    second projection maps it back to ``d`` dimensions for the decoder. No
    auxiliary loss. Perplexity and codewords in use are over the implicit codebook.

    Args:
        levels: the number of levels per dimension, e.g. ``(8, 4, 4)`` (or the text ``"8,4,4"``) for 128 codes.
        project_out_bias: how the output projection's bias starts: ``"zeros"`` (Keras's) or
            ``"uniform"`` in ``+-1/sqrt(n)``, as PyTorch's ``nn.Linear`` (vector-quantize-pytorch's
            ``project_out``) starts it. Zero is one of the levels; when every code of a batch
            rounds to it (small ``z_e``, as conv_grid's at initialisation), a zero bias hands the
            decoder an all-zero input, where every ReLU's gradient is 0 and no weight ever moves.
        seed: seed of the projections' Glorot-uniform initialisation.
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``.
        head: must be None (FSQ takes no head).
        training: unused (FSQ is deterministic).

    Returns:
        The decoder input ``[..., d]``, float32: the rounded code projected back, with the
        straight-through gradient. ``codewords(tokens(z_e))`` equals it.

    Example:

    ```python
    import numpy as np
    from keras.ops import convert_to_numpy
    from softvq_tf import FiniteScalarQuantizer

    fsq = FiniteScalarQuantizer(levels=(8, 5, 5), seed=0)  # 200 implicit codewords
    z_e = np.random.default_rng(0).normal(size=(2, 7, 7, 16)).astype("float32")  # a 7 x 7 grid, d = 16
    decoder_input = fsq(z_e)  # [2, 7, 7, 16]
    tokens = fsq.tokens(z_e)  # [2, 7, 7], integers in [0, 200)
    np.testing.assert_allclose(convert_to_numpy(fsq.codewords(tokens)), convert_to_numpy(decoder_input), atol=1e-6)
    ```
    """

    def __init__(self, levels=(8, 4, 4), project_out_bias="zeros", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(levels, str):
            levels = parse_levels(levels)
        check_layer_options(levels=levels, project_out_bias=project_out_bias)
        self.levels = tuple(int(level) for level in levels)
        self.project_out_bias = project_out_bias
        self.num_codewords = int(np.prod(self.levels))
        self.perplexity = CodebookPerplexity(self.num_codewords, name=self.metric_name("perplexity"))
        self.codewords_in_use = CodewordsInUse(self.num_codewords, name=self.metric_name("codewords_in_use"))

    def build(self, z_e_shape, head_shape=None):
        super().build(z_e_shape, head_shape)
        d, n = int(z_e_shape[-1]), len(self.levels)
        init = lambda i: keras.initializers.GlorotUniform(None if self.seed is None else self.seed + i)  # noqa: E731
        self.project_in = self.add_weight(shape=(d, n), initializer=init(0), name="project_in")
        self.bias_in = self.add_weight(shape=(n,), initializer="zeros", name="bias_in")
        self.project_out = self.add_weight(shape=(n, d), initializer=init(1), name="project_out")
        bias_out = "zeros"
        if self.project_out_bias == "uniform":
            limit = 1.0 / math.sqrt(n)
            bias_out = keras.initializers.RandomUniform(-limit, limit, None if self.seed is None else self.seed + 2)
        self.bias_out = self.add_weight(shape=(d,), initializer=bias_out, name="bias_out")

    def bound(self, z):
        """Each dimension squashed into its ``L_i`` levels' range, ``[..., n]``."""
        levels = np.asarray(self.levels, np.float64)
        half = (levels - 1.0) * (1.0 - 1e-3) / 2.0
        offset = np.where(levels % 2 == 0, 0.5, 0.0)
        shift = np.tan(offset / half)
        as_constant = lambda a: ops.convert_to_tensor(a.astype(np.float32))  # noqa: E731
        return ops.tanh(z + as_constant(shift)) * as_constant(half) - as_constant(offset)

    def round_to_levels(self, z):
        """The nearest level of each bounded dimension, scaled to ``[-1, 1]``, with a straight-through gradient."""
        bounded = self.bound(z)
        rounded = bounded + ops.stop_gradient(ops.round(bounded) - bounded)
        return rounded / self._half_width()

    def _half_width(self):
        return ops.convert_to_tensor(np.array([float(level // 2) for level in self.levels], np.float32))

    def code_indices(self, codes):
        """The implicit codebook index ``[...]`` of ``codes [..., n]``: a bijection onto ``[0, prod(levels))``."""
        half_width = self._half_width()
        digits = ops.cast(ops.round(codes * half_width + half_width), "int32")
        basis = ops.convert_to_tensor(np.cumprod((1,) + self.levels[:-1]).astype(np.int32))
        return ops.sum(digits * basis, axis=-1)

    def tokens(self, z_e, head=None):
        """Each position's index in the implicit codebook, ``[...]``."""
        return self.code_indices(self.round_to_levels(self._project(self._float32(z_e, head)[0])))

    def codewords(self, tokens):
        """The decoder input of ``tokens [...]``, ``[..., d]``: the inverse of ``tokens``, so that
        ``codewords(tokens(z_e))`` is the inference output."""
        levels = np.asarray(self.levels, np.int32)
        basis = ops.convert_to_tensor(np.cumprod((1,) + self.levels[:-1]).astype(np.int32))
        digits = ops.mod(ops.floor_divide(ops.expand_dims(ops.cast(tokens, "int32"), -1), basis), levels)  # [..., n]
        half_width = self._half_width()
        codes = (ops.cast(digits, "float32") - half_width) / half_width
        return leading_shape_of(ops.matmul(as_rows(codes), self.project_out) + self.bias_out, codes)

    def code(self, z_e):
        """FSQ's own code of ``z_e [..., d]`` before rounding, scaled as the decoder reads it, ``[..., n]``.

        The probes read this beside ``z_e``: FSQ trains only the ``n`` directions
        of ``z_e`` that ``project_in`` keeps, so ``z_e``'s other ``d - n`` are
        untrained noise to k-means, a handicap the other bottlenecks do not have.
        """
        return self.bound(self._project(z_e)) / self._half_width()

    def _project(self, z_e):
        """``z_e [..., d]`` projected to the ``n`` quantized dimensions, before bounding."""
        return ops.matmul(ops.cast(z_e, "float32"), self.project_in) + self.bias_in

    def call(self, z_e, head=None, training=None):
        z_e = self._float32(z_e, head)[0]
        codes = self.round_to_levels(self._project(as_rows(z_e)))  # [N, n]
        probs = ops.one_hot(self.code_indices(codes), self.num_codewords)  # [N, prod(levels)]
        self.update_metric(self.perplexity, probs)
        self.update_metric(self.codewords_in_use, probs)
        return leading_shape_of(ops.matmul(codes, self.project_out) + self.bias_out, z_e)

    def get_config(self):
        return {**super().get_config(), "levels": list(self.levels), "project_out_bias": self.project_out_bias}
