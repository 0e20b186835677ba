"""The hard VQ-VAE quantizer (van den Oord et al. 2017) and the rotation trick (Fifty et al. 2024)."""

import keras
from keras import ops

from softvq_tf.layers.metrics import PACKAGE
from softvq_tf.layers.quantizer import _Quantizer
from softvq_tf.layers.rules import check_layer_options


@keras.saving.register_keras_serializable(package=PACKAGE)
class VectorQuantizer(_Quantizer):
    """Hard VQ-VAE bottleneck (van den Oord et al. 2017): nearest codeword ``e_k*``, ``k* = argmin_k ||z_e - e_k||^2``.

    The loss is eq. (27) of Wu & Flierl with the notebooks' per-element means,
    ``vq_weight * (||sg(z_e) - z_q||^2 + commitment * ||z_e - sg(z_q)||^2)``, added with ``add_loss``.

    Args:
        num_codewords: K, the codebook size (a whole number).
        gradient_estimator: how the decoder's gradient reaches ``z_e``:
            ``"straight_through"`` copies it (the paper's); ``"rotation"`` is the
            rotation trick (Fifty et al. 2024): the decoder input is
            ``sg(lambda R) z_e`` with ``R`` the rotation that takes ``z_e``'s
            direction to ``z_q``'s (Householder form) and ``lambda =
            ||z_q|| / ||z_e||``, so its value is ``z_q`` and the gradient to
            ``z_e`` is ``lambda R^T g``.
        commitment: beta of eq. (27), the weight of the commitment term (the paper's 2.5).
        vq_weight: w, the weight of the whole VQ loss (the paper's 3.0).
        codebook_initializer: initializer of the ``[d, K]`` codebook; None is uniform
            unit scaling, ``U[-sqrt(3/d), sqrt(3/d)]``.
        ema_decay: with a decay in (0, 1), the codebook is the exponential moving average
            of its codes (Sonnet's ``VectorQuantizerEMA``), updated in every training call,
            and the codebook term drops out of the loss; None (the paper's): learned by the optimizer.
        ema_epsilon: the EMA's Laplace smoothing of the cluster sizes.
        kmeans_init: start the codebook at the k-means centres of the first codes:
            call ``initialize_codebook(codes)`` before training (``QuantizerModel`` does it from
            the first batch); a training call before that is refused.
        dead_code_steps: restart a codeword no code chose for this many training steps at a
            random code of the batch; None: never.
        seed: seed of the codebook's initializer and of the restarts.
        **kwargs: Keras layer arguments (``name``, ...).

    Call arguments:
        z_e: the encoder's code ``[..., d]``, each position quantized on its own.
        head: must be None (this quantizer takes no head).
        training: whether this is a training call: the codebook upkeep runs only then.

    Returns:
        The decoder input ``z_e + sg(z_q - z_e)``, shaped as ``z_e``, float32: the value of the
        nearest codeword, the gradient copied to ``z_e`` (or rotated, with ``"rotation"``).
        ``codewords(tokens(z_e))`` equals it at inference.

    Example:

    ```python
    import keras
    import numpy as np
    from softvq_tf import VectorQuantizer

    encoder = keras.layers.Dense(8)  # z_e: d = 8
    quantizer = VectorQuantizer(32, ema_decay=0.99, seed=0, name="vq")  # K = 32, an EMA codebook
    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(16)(quantizer(encoder(inputs))))
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    history = model.fit(x, x, epochs=2, batch_size=16, verbose=0)
    print(sorted(history.history))  # ['loss', 'vq_bottleneck_loss', 'vq_codewords_in_use', 'vq_perplexity']
    tokens = quantizer.tokens(encoder(x))  # [64] integers in [0, 32)
    z_q = quantizer.codewords(tokens)  # [64, 8]: the decoder input at inference
    ```
    """

    def __init__(
        self,
        num_codewords,
        gradient_estimator="straight_through",
        commitment=2.5,
        vq_weight=3.0,
        codebook_initializer=None,
        ema_decay=None,
        ema_epsilon=1e-5,
        kmeans_init=False,
        dead_code_steps=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            num_codewords,
            commitment=commitment,
            vq_weight=vq_weight,
            codebook_initializer=codebook_initializer,
            ema_decay=ema_decay,
            ema_epsilon=ema_epsilon,
            kmeans_init=kmeans_init,
            dead_code_steps=dead_code_steps,
            seed=seed,
            **kwargs,
        )
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
