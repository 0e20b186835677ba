"""Run configuration: one typed object filled from the paper's presets and the flags.

The preset table mirrors the paper's settings (design.md section 4) and the
authors' notebooks where the paper is silent. A resolved ``RunConfig`` is
written as JSON into the run directory and read back by ``evaluate.py``.
"""

import dataclasses
import json
import math
import os
from typing import Optional

from softvq_tf.bottlenecks import BOTTLENECKS
from softvq_tf.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    network: str
    image_shape: tuple
    latent_dim: int
    codewords_vq: int
    codewords_soft_vq: int
    beta_vae: float  # the KL weight of beta_vae
    vq_weight: float  # w in w * (codebook + beta * commitment)
    vq_commitment: float  # beta of the VQ loss
    steps: int
    soft_vq_steps: int  # the paper stops soft VQ-VAE early on SVHN and CIFAR-10
    pixel_max: float  # the stored images' largest value
    pixel_offset: float  # added after scaling to [0, 1]


_MNIST_LIKE = dict(
    network="mlp", image_shape=(28, 28, 1), latent_dim=64, codewords_vq=128, codewords_soft_vq=128,
    beta_vae=20.0, vq_weight=3.0, vq_commitment=2.5, steps=40_000, soft_vq_steps=40_000,
    pixel_max=255.0, pixel_offset=0.0,
)
_COLOUR = dict(
    network="cnn", image_shape=(32, 32, 3), latent_dim=256, codewords_vq=512, codewords_soft_vq=32,
    beta_vae=100.0, vq_weight=2.0, vq_commitment=7.5, steps=40_000, soft_vq_steps=10_000,
    pixel_max=255.0, pixel_offset=-0.5,
)
PRESETS = {
    "mnist": DatasetPreset(**_MNIST_LIKE),
    "fashion_mnist": DatasetPreset(**_MNIST_LIKE),
    "svhn": DatasetPreset(**_COLOUR),
    "cifar10": DatasetPreset(**_COLOUR),
    # scikit-learn's 8x8 digits (values 0..16): small enough to train in seconds.
    "digits": DatasetPreset(
        network="mlp", image_shape=(8, 8, 1), latent_dim=16, codewords_vq=32, codewords_soft_vq=32,
        beta_vae=20.0, vq_weight=3.0, vq_commitment=2.5, steps=1_500, soft_vq_steps=1_500,
        pixel_max=16.0, pixel_offset=0.0,
    ),
}
DATASETS = tuple(PRESETS)
DISTRIBUTE = ("auto", "default", "mirrored", "multi_worker")


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run."""

    dataset: str = "digits"
    bottleneck: str = "soft_vq"
    data_dir: Optional[str] = None
    network: str = "mlp"
    image_shape: tuple = (8, 8, 1)
    latent_dim: int = 16
    num_codewords: Optional[int] = None  # K; None for bottlenecks without a codebook
    beta: Optional[float] = None  # KL weight (vae family) or commitment weight (vq family)
    vq_weight: float = 3.0
    noise_std: float = 0.0
    likelihood: str = "original"
    reconstruction_scale: float = 1.0
    pixel_max: float = 16.0
    pixel_offset: float = 0.0
    steps: int = 1_500
    batch_size: int = 32
    lr: float = 3e-4
    seed: int = 0
    validation_split: float = 0.0  # fraction of train held out; probes then use it as the test set
    steps_per_execution: Optional[int] = None  # None: the largest divisor of the epoch length up to 50
    checkpoint_every: Optional[int] = None  # steps per Keras epoch (log, checkpoint, backup); None: about one pass
    jit_compile: bool = False
    precision: str = "float32"  # or mixed_bfloat16 (matmuls in bfloat16, variables and quantizer in float32)
    distribute: str = "auto"
    out: str = "runs"
    name: Optional[str] = None

    @property
    def run_dir(self):
        return os.path.join(self.out, self.name)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        fields = json.loads(text)
        fields["image_shape"] = tuple(fields["image_shape"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})

    @classmethod
    def load(cls, run_dir):
        with open(os.path.join(run_dir, "config.json")) as f:
            return cls.from_json(f.read())


def default_run_name(c):
    """``DATASET_BOTTLENECK_dD[_KK][_variant...]_seedS``: settings that change the model get a suffix."""
    k = f"_K{c.num_codewords}" if c.num_codewords else ""
    variant = "".join([
        f"_noise{c.noise_std:g}" if c.noise_std else "",
        "_gaussian" if c.likelihood == "gaussian" else "",
        "_bf16" if c.precision == "mixed_bfloat16" else "",
    ])
    return f"{c.dataset}_{c.bottleneck}_d{c.latent_dim}{k}{variant}_seed{c.seed}"


STEPS_PER_EXECUTION = 50  # steps per call into the TF graph; see results/benchmarks.md


def default_steps_per_execution(steps, checkpoint_every=None):
    """The largest ``k <= STEPS_PER_EXECUTION`` dividing ``steps`` (and ``checkpoint_every``)."""
    period = math.gcd(steps, checkpoint_every) if checkpoint_every else steps
    return max(k for k in range(1, STEPS_PER_EXECUTION + 1) if period % k == 0)


def resolve_config(dataset="digits", bottleneck="soft_vq", **flags):
    """Fill a ``RunConfig`` from the preset of ``dataset``; flags set to None keep the preset."""
    if dataset not in PRESETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if bottleneck not in BOTTLENECKS:
        raise UsageError(f"unknown bottleneck {bottleneck!r}; choose one of {', '.join(BOTTLENECKS)}")
    p = PRESETS[dataset]
    quantized = bottleneck in ("vq", "soft_vq")
    defaults = dict(
        network=p.network,
        image_shape=p.image_shape,
        latent_dim=p.latent_dim,
        num_codewords=(p.codewords_vq if bottleneck == "vq" else p.codewords_soft_vq) if quantized else None,
        beta={"vae": 1.0, "beta_vae": p.beta_vae}.get(bottleneck, p.vq_commitment if quantized else None),
        vq_weight=p.vq_weight,
        # The VAE family and information dropout weigh the reconstruction by the
        # input size so that their regularisers keep the paper's weights.
        reconstruction_scale=float(
            math.prod(p.image_shape) if bottleneck in ("vae", "beta_vae", "info_dropout") else 1.0
        ),
        pixel_max=p.pixel_max,
        pixel_offset=p.pixel_offset,
        steps=p.soft_vq_steps if bottleneck == "soft_vq" else p.steps,
    )
    given = {k: v for k, v in flags.items() if v is not None}
    unknown = set(given) - {f.name for f in dataclasses.fields(RunConfig)}
    if unknown:
        raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "num_codewords" in given and not quantized:
        raise UsageError(f"--K applies to vq and soft_vq only, not {bottleneck}")
    config = RunConfig(dataset=dataset, bottleneck=bottleneck, **{**defaults, **given})
    if config.steps_per_execution is None and config.steps >= 1:
        config.steps_per_execution = (
            1 if config.distribute == "multi_worker" else default_steps_per_execution(config.steps, config.checkpoint_every)
        )
    if config.name is None:
        config.name = default_run_name(config)
    validate(config)
    return config


def validate(c):
    """Reject impossible settings with one line that names the flag."""
    spe = 1 if c.steps_per_execution is None else c.steps_per_execution  # None only when --steps is invalid
    checks = [
        (c.latent_dim >= 1, f"--latent-dim must be >= 1, got {c.latent_dim}"),
        (c.num_codewords is None or c.num_codewords >= 1, f"--K must be >= 1, got {c.num_codewords}"),
        (c.steps >= 1, f"--steps must be >= 1, got {c.steps}"),
        (c.batch_size >= 1, f"--batch-size must be >= 1, got {c.batch_size}"),
        (c.lr > 0, f"--lr must be > 0, got {c.lr}"),
        (c.beta is None or c.beta >= 0, f"--beta must be >= 0, got {c.beta}"),
        (c.vq_weight >= 0, f"--vq-weight must be >= 0, got {c.vq_weight}"),
        (c.noise_std >= 0, f"--noise-std must be >= 0, got {c.noise_std}"),
        (c.likelihood in ("original", "gaussian"), f"--likelihood must be original or gaussian, got {c.likelihood}"),
        (0 <= c.validation_split < 1, f"--validation-split must be in [0, 1), got {c.validation_split}"),
        (spe >= 1, f"--steps-per-execution must be >= 1, got {c.steps_per_execution}"),
        (c.checkpoint_every is None or c.checkpoint_every >= 1, f"--checkpoint-every must be >= 1, got {c.checkpoint_every}"),
        # Keras 3.15's multi-step loop feeds no value to a placeholder under MultiWorkerMirroredStrategy.
        (spe == 1 or c.distribute != "multi_worker", "--steps-per-execution must be 1 with --distribute multi_worker"),
        (spe < 1 or c.steps % spe == 0, f"--steps-per-execution {spe} must divide --steps {c.steps}"),
        (spe < 1 or not c.checkpoint_every or c.checkpoint_every % spe == 0,
         f"--steps-per-execution {spe} must divide --checkpoint-every {c.checkpoint_every}"),
        (c.distribute in DISTRIBUTE, f"--distribute must be one of {', '.join(DISTRIBUTE)}, got {c.distribute}"),
        (c.precision in ("float32", "mixed_bfloat16"), f"--precision must be float32 or mixed_bfloat16, got {c.precision}"),
        (c.network in ("mlp", "cnn"), f"network must be mlp or cnn, got {c.network}"),
        (c.seed >= 0, f"--seed must be >= 0, got {c.seed}"),
        (bool(c.name) and os.sep not in c.name, f"--name must be a plain directory name, got {c.name!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
