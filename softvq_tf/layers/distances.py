"""The ops the quantizers share: squared distances to a codebook, codebook lookups, and codes as rows.

Every position of a code ``[..., d]`` is one code: the quantizers compute on
rows ``[N, d]`` and put the result back in the leading shape, so a
``[B, H, W, d]`` call equals the ``[B*H*W, d]`` call.
"""

from keras import ops


def mean_squared_error(a, b):
    """``mean((a - b)^2)`` over the batch AND the d latent dimensions.

    This is how the authors' notebooks (and Sonnet, and keras.io's VQ-VAE) write
    each term of eq. (27): ``(1/d) mean_b ||a_b - b_b||^2``. The paper's weights
    ``w`` and ``beta`` were tuned against it and against a per-pixel mean
    reconstruction term; summing over d would make the VQ loss d times stronger
    (64x on MNIST), shrink the code into the middle of the codebook and cost
    about 14 clustering-accuracy points.
    """
    return ops.mean(ops.square(a - b))


def squared_distances(z, codebook):
    """``||z - e_k||^2``, ``[..., K]``, for codes ``z [..., d]``, codebook ``[d, K]``: ``|z|^2 - 2 z.e + |e|^2``."""
    z = ops.cast(z, "float32")
    codebook = ops.cast(codebook, "float32")
    z_sq = ops.sum(ops.square(z), axis=-1, keepdims=True)  # [..., 1]
    e_sq = ops.sum(ops.square(codebook), axis=0, keepdims=True)  # [1, K]
    return z_sq - 2.0 * ops.matmul(z, codebook) + e_sq  # [..., K]


def nearest_codewords(z, codebook):
    """``argmin_k ||z - e_k||^2``, ``[...]``: the token of each code ``z [..., d]`` in a codebook ``[d, K]``."""
    return ops.argmin(squared_distances(z, codebook), axis=-1)


def codebook_rows(codebook, tokens):
    """The codewords ``[..., d]`` of ``tokens [...]`` in a codebook ``[d, K]``."""
    return ops.take(ops.transpose(ops.cast(codebook, "float32")), tokens, axis=0)


def as_rows(x):
    """``x [..., w]`` as rows ``[N, w]`` (``[B, w]`` is returned as it is)."""
    return x if len(x.shape) == 2 else ops.reshape(x, (-1, x.shape[-1]))


def leading_shape_of(rows, like, width=None):
    """Rows ``[N, w]`` back in the leading shape of ``like [..., d]``: ``[..., width or w]``."""
    if len(like.shape) == 2:
        return rows
    return ops.reshape(rows, (*ops.shape(like)[:-1], rows.shape[-1] if width is None else width))
