"""The paper's settings per data set (its Training Setup section), and the authors' notebooks where it is silent.

What differs between bottlenecks on one data set (the soft VQ-VAE's codebook
size and early stop, beta-VAE's KL weight) is a preset field that a
bottleneck's registry entry names (``preset_defaults``).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    network: str
    image_shape: tuple
    latent_dim: int
    codewords_vq: int
    codewords_soft_vq: int
    beta_vae_kl_weight: float  # the KL weight of beta_vae
    vq_weight: float  # w in w * (codebook term + commitment * commitment term)
    vq_commitment: float  # beta of eq. (27)
    steps: int
    soft_vq_steps: int  # the paper stops soft VQ-VAE early on SVHN and CIFAR-10
    pixel_max: float  # the stored images' largest value
    pixel_offset: float  # added after scaling to [0, 1]


_MNIST_LIKE = dict(
    network="mlp",
    image_shape=(28, 28, 1),
    latent_dim=64,
    codewords_vq=128,
    codewords_soft_vq=128,
    beta_vae_kl_weight=20.0,
    vq_weight=3.0,
    vq_commitment=2.5,
    steps=40_000,
    soft_vq_steps=40_000,
    pixel_max=255.0,
    pixel_offset=0.0,
)
_COLOUR = dict(
    network="cnn",
    image_shape=(32, 32, 3),
    latent_dim=256,
    codewords_vq=512,
    codewords_soft_vq=32,
    beta_vae_kl_weight=100.0,
    vq_weight=2.0,
    vq_commitment=7.5,
    steps=40_000,
    soft_vq_steps=10_000,
    pixel_max=255.0,
    pixel_offset=-0.5,
)
PRESETS = {
    "mnist": DatasetPreset(**_MNIST_LIKE),
    "fashion_mnist": DatasetPreset(**_MNIST_LIKE),
    "svhn": DatasetPreset(**_COLOUR),
    "cifar10": DatasetPreset(**_COLOUR),
    # scikit-learn's 8x8 digits (values 0..16): small enough to train in seconds.
    "digits": DatasetPreset(
        network="mlp",
        image_shape=(8, 8, 1),
        latent_dim=16,
        codewords_vq=32,
        codewords_soft_vq=32,
        beta_vae_kl_weight=20.0,
        vq_weight=3.0,
        vq_commitment=2.5,
        steps=1_500,
        soft_vq_steps=1_500,
        pixel_max=16.0,
        pixel_offset=0.0,
    ),
}
DATASETS = tuple(PRESETS)
