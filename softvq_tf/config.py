"""Run configuration: one typed object filled from the paper's presets and the flags.

The preset table mirrors the paper's settings (design.md section 4) and the
authors' notebooks where the paper is silent. A resolved ``RunConfig`` is
written as JSON into the run directory and read back by ``evaluate.py``.
"""

import dataclasses
import hashlib
import json
import math
import os
import typing
from typing import Optional

from softvq_tf import BOTTLENECKS
from softvq_tf.errors import UsageError


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
    network="mlp", image_shape=(28, 28, 1), latent_dim=64, codewords_vq=128, codewords_soft_vq=128,
    beta_vae_kl_weight=20.0, vq_weight=3.0, vq_commitment=2.5, steps=40_000, soft_vq_steps=40_000,
    pixel_max=255.0, pixel_offset=0.0,
)
_COLOUR = dict(
    network="cnn", image_shape=(32, 32, 3), latent_dim=256, codewords_vq=512, codewords_soft_vq=32,
    beta_vae_kl_weight=100.0, vq_weight=2.0, vq_commitment=7.5, steps=40_000, soft_vq_steps=10_000,
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
        beta_vae_kl_weight=20.0, vq_weight=3.0, vq_commitment=2.5, steps=1_500, soft_vq_steps=1_500,
        pixel_max=16.0, pixel_offset=0.0,
    ),
}
DATASETS = tuple(PRESETS)
DISTRIBUTE = ("auto", "default", "mirrored", "multi_worker")


QUANTIZERS = ("vq", "soft_vq")
# Settings that mean something only for some bottlenecks; elsewhere they stay None and a flag is refused.
APPLIES_TO = {
    "num_codewords": QUANTIZERS,
    "kl_weight": ("vae", "beta_vae"),
    "commitment": QUANTIZERS,
    "vq_weight": QUANTIZERS,
    "noise_std": ("soft_vq",),
    "likelihood": ("soft_vq",),
    "ema_decay": ("vq",),
    "kmeans_init": QUANTIZERS,
    "dead_code_steps": QUANTIZERS,
}
FLAGS = {"num_codewords": "--K", "kl_weight": "--kl-weight", "commitment": "--commitment", "vq_weight": "--vq-weight",
         "noise_std": "--noise-std", "likelihood": "--likelihood", "ema_decay": "--ema-decay",
         "kmeans_init": "--kmeans-init", "dead_code_steps": "--dead-code-steps"}
# Codebook-collapse remedies (not in the paper): None means off, and an off
# remedy is left out of a run's identity, so runs made before they existed
# keep theirs.
REMEDIES = ("ema_decay", "kmeans_init", "dead_code_steps")

# Version of the training recipe. 2: the VQ loss as the notebooks reduce it (a
# mean over batch and latent dimensions), TF1's Adam epsilon 1e-8, float32
# bottlenecks under mixed precision, resume that continues the data stream.
# A run written by another recipe is never reused.
RECIPE = 2


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run."""

    dataset: str = "digits"
    bottleneck: str = "soft_vq"
    data_dir: Optional[str] = None
    network: str = "mlp"
    image_shape: tuple = (8, 8, 1)
    latent_dim: int = 16
    num_codewords: Optional[int] = None  # K (vq, soft_vq)
    kl_weight: Optional[float] = None  # weight of the KL term (vae, beta_vae)
    commitment: Optional[float] = None  # beta of eq. (27), the commitment weight (vq, soft_vq)
    vq_weight: Optional[float] = None  # w in w * (codebook + commitment * commitment term) (vq, soft_vq)
    noise_std: Optional[float] = None  # noise on the code before soft quantization (soft_vq)
    likelihood: Optional[str] = None  # "original" (the notebooks') or "gaussian" (soft_vq)
    ema_decay: Optional[float] = None  # codebook by exponential moving averages with this decay (vq); None: by gradient
    kmeans_init: Optional[bool] = None  # codebook from k-means of the first batches' codes (vq, soft_vq)
    dead_code_steps: Optional[int] = None  # restart a codeword unused for this many steps (vq, soft_vq)
    reconstruction_scale: float = 1.0
    pixel_max: float = 16.0
    pixel_offset: float = 0.0
    steps: int = 1_500
    batch_size: int = 32
    lr: float = 3e-4
    adam_epsilon: float = 1e-8  # TF1's AdamOptimizer, as in the notebooks (Keras's default is 1e-7)
    seed: int = 0
    validation_split: float = 0.0  # fraction of train held out; probes then use it as the test set
    steps_per_execution: Optional[int] = None  # None: the largest divisor of the epoch length up to 50
    checkpoint_every: Optional[int] = None  # steps per Keras epoch (log, checkpoint, backup); None: about one pass
    jit_compile: Optional[bool] = None  # XLA; None: on for the float32 MLP on one replica (training.use_xla)
    precision: str = "float32"  # or mixed_bfloat16 (matmuls in bfloat16, variables and bottleneck in float32)
    distribute: str = "auto"
    out: str = "runs"
    name: Optional[str] = None
    recipe: int = RECIPE

    @property
    def run_dir(self):
        return os.path.join(self.out, self.name)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        fields = json.loads(text)
        fields["image_shape"] = tuple(fields["image_shape"])
        fields.setdefault("recipe", 1)  # configs written before the recipe was recorded
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})

    @classmethod
    def load(cls, run_dir):
        with open(os.path.join(run_dir, "config.json")) as f:
            return cls.from_json(f.read())


# How a run is executed, not what it computes: excluded from its identity.
# (Mirrored replicas, steps per graph call, epoch length and XLA change at
# most the rounding; the data folder is where the same data set lives.)
EXECUTION_FIELDS = ("seed", "name", "out", "distribute", "data_dir", "steps_per_execution", "checkpoint_every", "jit_compile")


def run_identity(config):
    """What a run computes: every setting except its seed and how it is executed (``EXECUTION_FIELDS``).

    Runs with equal identities differ only by seed: they are reused, averaged
    and labelled together; runs with different identities never are.
    """
    fields = json.loads(config.to_json())
    return {k: v for k, v in fields.items() if k not in EXECUTION_FIELDS and not (k in REMEDIES and v is None)}


def identity_key(config):
    """A short, stable digest of ``run_identity`` (for grouping and file names)."""
    text = json.dumps(run_identity(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def identity_changes(old, new):
    """The identity fields where two configs differ (sorted)."""
    a, b = run_identity(old), run_identity(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def variant(config):
    """The identity fields where ``config`` departs from its data set's preset, as ``{field: value}``."""
    preset = run_identity(_fill(config.dataset, config.bottleneck, {}))
    return {k: v for k, v in run_identity(config).items() if preset.get(k) != v}


def variant_label(config):
    """``variant`` as text, e.g. ``steps=20000, batch_size=64``; '' for the preset itself."""
    return ", ".join(f"{k}={v}" for k, v in variant(config).items())


_SHORT = {"batch_size": "batch", "noise_std": "noise", "kl_weight": "kl", "commitment": "commit", "vq_weight": "w",
          "validation_split": "val", "adam_epsilon": "eps", "reconstruction_scale": "rscale", "ema_decay": "ema",
          "dead_code_steps": "restart"}


def default_run_name(c):
    """``DATASET_BOTTLENECK_dD[_KK][_variant...]_seedS``: every departure from the preset is in the name."""
    k = f"_K{c.num_codewords}" if c.num_codewords else ""
    parts = []
    for field, value in variant(c).items():
        if field in ("latent_dim", "num_codewords"):
            continue  # already in the name
        if field == "precision":
            parts.append("bf16" if value == "mixed_bfloat16" else value)
        elif field == "likelihood":
            parts.append(str(value))
        elif field == "kmeans_init":
            parts.append("kmeans")
        else:
            text = f"{value:g}" if isinstance(value, float) else "x".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(_SHORT.get(field, field) + text)
    variant_part = "".join("_" + p for p in parts)
    return f"{c.dataset}_{c.bottleneck}_d{c.latent_dim}{k}{variant_part}_seed{c.seed}"


STEPS_PER_EXECUTION = 50  # steps per call into the TF graph; see results/benchmarks.md


def default_steps_per_execution(steps, checkpoint_every=None):
    """The largest ``k <= STEPS_PER_EXECUTION`` dividing ``steps`` (and ``checkpoint_every``)."""
    period = math.gcd(steps, checkpoint_every) if checkpoint_every else steps
    return max(k for k in range(1, STEPS_PER_EXECUTION + 1) if period % k == 0)


def _epoch_period(steps, spe, target):
    """The longest epoch <= ``target`` steps dividing ``steps``, a multiple of ``spe``, at least target / 4; else None."""
    if steps <= target:
        return steps if steps % spe == 0 else None
    candidates = [p for p in range(spe, target + 1, spe) if steps % p == 0 and p >= target // 4]
    return max(candidates) if candidates else None


def epoch_length(config, n_train):
    """Steps per Keras epoch (the logging, backup and checkpoint period): a divisor of ``steps``.

    Aims at one pass over the data (at least 250 steps, so that small data sets
    do not spend their time in callbacks), a multiple of ``steps_per_execution``.
    A ``--steps`` with no divisor near that is refused, rather than silently
    running one-step epochs with a backup and a checkpoint each.
    """
    if config.checkpoint_every:
        if config.steps % config.checkpoint_every:
            raise UsageError(f"--checkpoint-every {config.checkpoint_every} must divide --steps {config.steps}")
        return config.checkpoint_every
    target = max(250, n_train // config.batch_size)
    period = _epoch_period(config.steps, config.steps_per_execution, target)
    if period is None:
        def works(steps):
            return _epoch_period(steps, default_steps_per_execution(steps), target) is not None

        nearest = min((s for s in range(max(1, config.steps - target), config.steps + target + 1) if works(s)),
                      key=lambda s: abs(s - config.steps))
        raise UsageError(
            f"--steps {config.steps} has no divisor between {target // 4} and {target} steps (about one pass over "
            f"{n_train} images at batch {config.batch_size}) for the epochs that log, back up and checkpoint; "
            f"use --steps {nearest}, or set --checkpoint-every")
    return period


def resolve_config(dataset="digits", bottleneck="soft_vq", **flags):
    """Fill a ``RunConfig`` from the preset of ``dataset``; flags set to None keep the preset."""
    config = _fill(dataset, bottleneck, flags)
    if config.steps_per_execution is None and config.steps >= 1:
        config.steps_per_execution = (
            1 if config.distribute == "multi_worker" else default_steps_per_execution(config.steps, config.checkpoint_every)
        )
    if config.name is None:
        config.name = default_run_name(config)
    validate(config)
    return config


def _fill(dataset, bottleneck, flags):
    """The preset of ``dataset`` for ``bottleneck`` with ``flags`` applied (not yet named or validated)."""
    if dataset not in PRESETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if bottleneck not in BOTTLENECKS:
        raise UsageError(f"unknown bottleneck {bottleneck!r}; choose one of {', '.join(BOTTLENECKS)}")
    p = PRESETS[dataset]
    defaults = dict(
        network=p.network,
        image_shape=p.image_shape,
        latent_dim=p.latent_dim,
        num_codewords=p.codewords_vq if bottleneck == "vq" else p.codewords_soft_vq,
        kl_weight={"vae": 1.0, "beta_vae": p.beta_vae_kl_weight}.get(bottleneck),
        commitment=p.vq_commitment,
        vq_weight=p.vq_weight,
        noise_std=0.0,
        likelihood="original",
        # The VAE family and information dropout weigh the reconstruction by the
        # input size so that their regularisers keep the paper's weights.
        reconstruction_scale=float(
            math.prod(p.image_shape) if bottleneck in ("vae", "beta_vae", "info_dropout") else 1.0
        ),
        pixel_max=p.pixel_max,
        pixel_offset=p.pixel_offset,
        steps=p.soft_vq_steps if bottleneck == "soft_vq" else p.steps,
    )
    for setting, users in APPLIES_TO.items():
        if bottleneck not in users:
            defaults[setting] = None
    # A remedy switched off is None (see REMEDIES), however it was written.
    given = {k: v for k, v in flags.items() if v is not None and not (k in REMEDIES and v is False)}
    unknown = set(given) - {f.name for f in dataclasses.fields(RunConfig)}
    if unknown:
        raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for setting in sorted(given):
        if setting in APPLIES_TO and bottleneck not in APPLIES_TO[setting]:
            raise UsageError(f"{FLAGS[setting]} applies to {' and '.join(APPLIES_TO[setting])} only, not {bottleneck}")
    return RunConfig(dataset=dataset, bottleneck=bottleneck, **{**defaults, **given})


_NOT_SETTABLE = ("dataset", "out", "name", "seed", "validation_split", "image_shape", "recipe", "data_dir")


def parse_settings(text, where):
    """``"key=value,key=value"`` -> ``{key: typed value}`` of ``RunConfig`` fields (``where`` names the flag in errors)."""
    types = {f.name: f.type for f in dataclasses.fields(RunConfig)}
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key == "bottleneck" and eq:
            settings[key] = value.strip()
            continue
        if not eq or key not in types or key in _NOT_SETTABLE:
            raise UsageError(f"{where}: {item!r} is not a settable key=value")
        field_type = types[key]
        kind = next((t for t in typing.get_args(field_type) if t is not type(None)), field_type)
        try:
            settings[key] = _parse_bool(value) if kind is bool else kind(value.strip())
        except ValueError:
            raise UsageError(f"{where}: {key}={value!r} is not a valid {kind.__name__}") from None
    return settings


def _parse_bool(value):
    if value.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
    return value.strip().lower() in ("true", "1")


def applicable(bottleneck, settings):
    """The part of ``settings`` that applies to ``bottleneck`` (for commands that train several)."""
    return {k: v for k, v in settings.items() if k not in APPLIES_TO or bottleneck in APPLIES_TO[k]}


def validate(c):
    """Reject impossible settings with one line that names the flag."""
    spe = 1 if c.steps_per_execution is None else c.steps_per_execution  # None only when --steps is invalid
    checks = [
        (c.latent_dim >= 1, f"--latent-dim must be >= 1, got {c.latent_dim}"),
        (c.num_codewords is None or c.num_codewords >= 1, f"--K must be >= 1, got {c.num_codewords}"),
        (c.steps >= 1, f"--steps must be >= 1, got {c.steps}"),
        (c.batch_size >= 1, f"--batch-size must be >= 1, got {c.batch_size}"),
        (c.lr > 0, f"--lr must be > 0, got {c.lr}"),
        (c.kl_weight is None or c.kl_weight >= 0, f"--kl-weight must be >= 0, got {c.kl_weight}"),
        (c.commitment is None or c.commitment >= 0, f"--commitment must be >= 0, got {c.commitment}"),
        (c.vq_weight is None or c.vq_weight >= 0, f"--vq-weight must be >= 0, got {c.vq_weight}"),
        (c.noise_std is None or c.noise_std >= 0, f"--noise-std must be >= 0, got {c.noise_std}"),
        (c.likelihood in (None, "original", "gaussian"), f"--likelihood must be original or gaussian, got {c.likelihood}"),
        (c.ema_decay is None or 0 < c.ema_decay < 1, f"--ema-decay must be in (0, 1), got {c.ema_decay}"),
        (c.dead_code_steps is None or c.dead_code_steps >= 1, f"--dead-code-steps must be >= 1, got {c.dead_code_steps}"),
        (c.adam_epsilon > 0, f"--adam-epsilon must be > 0, got {c.adam_epsilon}"),
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
