"""``make_bottleneck``: every bottleneck the package offers, by name."""

from softvq_tf.layers.bottlenecks import (
    GaussianBottleneck,
    IdentityBottleneck,
    InformationDropout,
    SoftVectorQuantizer,
    VectorQuantizer,
)
from softvq_tf.layers.modern import FiniteScalarQuantizer, StochasticVectorQuantizer
from softvq_tf.options import BOTTLENECKS, MODERN_BOTTLENECKS, parse_levels


def make_bottleneck(
    name,
    *,
    num_codewords=None,
    kl_weight=None,
    commitment=None,
    vq_weight=None,
    noise_std=None,
    likelihood=None,
    ema_decay=None,
    kmeans_init=None,
    dead_code_steps=None,
    gradient_estimator=None,
    fsq_levels=None,
    fsq_project_out_bias=None,
    temperature_decay=None,
    seed=None,
):
    """Build the bottleneck layer called ``name``; settings left None keep the layer's default.

    Args:
        name: one of ``softvq_tf.options.BOTTLENECKS`` or ``MODERN_BOTTLENECKS``.
        num_codewords: the codebook size K (vq, soft_vq, sqvae).
        kl_weight: the KL weight (vae, beta_vae).
        commitment: the commitment weight beta (vq, soft_vq).
        vq_weight: the VQ loss weight w (vq, soft_vq).
        noise_std: the noise on the code in training (soft_vq).
        likelihood: ``"original"`` or ``"gaussian"`` (soft_vq).
        ema_decay: the EMA codebook's decay (vq).
        kmeans_init: whether the codebook waits for a k-means initialisation (vq, soft_vq).
        dead_code_steps: restart a codeword idle this many steps (vq, soft_vq).
        gradient_estimator: vq's estimator of the decoder's gradient.
        fsq_levels: FSQ's levels, a sequence or text such as ``"8,4,4"`` (fsq).
        fsq_project_out_bias: how FSQ's output projection bias starts, ``"zeros"`` or ``"uniform"`` (fsq).
        temperature_decay: the SQ-VAE's temperature decay per step (sqvae).
        seed: the layer's seed.

    Returns:
        The layer, named ``"bottleneck"``.
    """

    def given(**settings):
        return {k: v for k, v in settings.items() if v is not None}

    remedies = given(ema_decay=ema_decay, kmeans_init=kmeans_init, dead_code_steps=dead_code_steps)
    if name == "ae":
        return IdentityBottleneck(seed=seed, name="bottleneck")
    if name in ("vae", "beta_vae"):
        return GaussianBottleneck(**given(kl_weight=kl_weight), seed=seed, name="bottleneck")
    if name == "info_dropout":
        return InformationDropout(seed=seed, name="bottleneck")
    if name == "vq":
        settings = given(commitment=commitment, vq_weight=vq_weight, gradient_estimator=gradient_estimator)
        return VectorQuantizer(num_codewords, **settings, **remedies, seed=seed, name="bottleneck")
    if name == "fsq":
        if isinstance(fsq_levels, str):
            fsq_levels = parse_levels(fsq_levels)
        settings = given(levels=fsq_levels, project_out_bias=fsq_project_out_bias)
        return FiniteScalarQuantizer(**settings, seed=seed, name="bottleneck")
    if name == "sqvae":
        settings = given(temperature_decay=temperature_decay)
        return StochasticVectorQuantizer(num_codewords, **settings, seed=seed, name="bottleneck")
    if name == "soft_vq":
        return SoftVectorQuantizer(
            num_codewords,
            **given(commitment=commitment, vq_weight=vq_weight, noise_std=noise_std, likelihood=likelihood),
            **remedies,
            seed=seed,
            name="bottleneck",
        )
    raise ValueError(f"unknown bottleneck {name!r}; choose one of {', '.join(BOTTLENECKS + MODERN_BOTTLENECKS)}")
