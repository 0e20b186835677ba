"""The hard VQ-VAE quantizer (van den Oord et al. 2017) and the rotation trick (Fifty et al. 2024)."""

import keras
from keras import ops

from softvq_tf.layers.metrics import PACKAGE
from softvq_tf.layers.quantizer import _Quantizer
from softvq_tf.layers.rules import check_layer_options


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorQuantizer(_Quantizer):
    """Hard VQ-VAE bottleneck (van den Oord et al. 2017): nearest codeword ``e_k*``, ``k* = argmin_k ||z_e - e_k||^2``.

    Args:
        gradient_estimator: how the decoder's gradient reaches ``z_e``:
            ``"straight_through"`` copies it (the paper's); ``"rotation"`` is the
            rotation trick (Fifty et al. 2024): the decoder input is
            ``sg(lambda R) z_e`` with ``R`` the rotation that takes ``z_e``'s
            direction to ``z_q``'s (Householder form) and ``lambda =
            ||z_q|| / ||z_e||``, so its value is ``z_q`` and the gradient to
            ``z_e`` is ``lambda R^T g``.
        **kwargs: those of the shared quantizer (``num_codewords``,
            ``commitment``, ``vq_weight``, ``codebook_initializer``, the remedies
            ``ema_decay``, ``ema_epsilon``, ``kmeans_init``, ``dead_code_steps``, ``seed``).

    Input ``z_e [..., d]`` (no head); output the nearest codeword of each position, ``[..., d]``.
    """

    def __init__(self, num_codewords, gradient_estimator="straight_through", **kwargs):
        super().__init__(num_codewords, **kwargs)
        check_layer_options(gradient_estimator=gradient_estimator)
        self.gradient_estimator = gradient_estimator

    def _quantize(self, z_e, head, training, codebook):
        indices = self.nearest_codeword_indices(z_e, codebook)  # [N]
        z_q = self.codewords(indices, codebook)  # [N, d]
        return z_q, ops.one_hot(indices, self.num_codewords, dtype=z_q.dtype)

    def _decoder_input(self, z_e, z_q):
        if self.gradient_estimator == "straight_through":
            return super()._decoder_input(z_e, z_q)
        return rotate_to(z_e, z_q)

    def get_config(self):
        return {**super().get_config(), "gradient_estimator": self.gradient_estimator}


def rotate_to(e, q, eps=1e-12):
    """The rotation trick's decoder input: ``sg(lambda R) e``, equal to ``q`` in value (along the last axis).

    ``u = e / ||e||``, ``v = q / ||q||``, ``w = (u + v) / ||u + v||``; then
    ``R e = e - 2 (e.w) w + 2 (e.u) v`` (Fifty et al. 2024, eq. 4, in the
    efficient form), with ``u``, ``v``, ``w`` and ``lambda = ||q|| / ||e||``
    held constant, so the gradient to ``e`` is ``lambda R^T g``.
    """
    dot = lambda a, b: ops.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
    e_norm = ops.sqrt(dot(e, e))
    q_norm = ops.sqrt(dot(q, q))
    u = ops.stop_gradient(e / ops.maximum(e_norm, eps))
    v = ops.stop_gradient(q / ops.maximum(q_norm, eps))
    # tf.math.l2_normalize's form: x / sqrt(max(|x|^2, eps)).
    w = ops.stop_gradient((u + v) * ops.rsqrt(ops.maximum(dot(u + v, u + v), eps)))
    rotated = e - 2.0 * dot(e, w) * w + 2.0 * dot(e, u) * v
    return rotated * ops.stop_gradient(q_norm / ops.maximum(e_norm, eps))
