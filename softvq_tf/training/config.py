"""Run configuration: one typed object filled from the paper's presets and the flags.

The presets are the paper's settings per data set (its Training Setup
section), and the authors' notebooks where the paper is silent. Every field
of ``RunConfig`` carries its flag, help, the bottlenecks it applies to and its
value rule; the command line, the refusal of flags that do not apply, the
checks and ``build_model``'s layer options are all derived from them. A
resolved ``RunConfig`` is written as JSON into the run directory and read back
by the evaluation.
"""

import argparse
import dataclasses
import hashlib
import json
import math
import os
import typing
from typing import Optional

from softvq_tf import options
from softvq_tf.options import BOTTLENECKS, CODEBOOK_BOTTLENECKS, LAYER_RULES, MODERN_BOTTLENECKS, NETWORKS, QUANTIZERS
from softvq_tf.training.errors import UsageError


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
DISTRIBUTE = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16")


# Codebook-collapse remedies (not in the paper): None means off, and an off
# remedy is left out of a run's identity, so runs without remedies keep the
# identity they had before the remedies existed.
REMEDIES = ("ema_decay", "kmeans_init", "dead_code_steps")
# Every setting added after runs were first stored: while unset (None) it stays out of a run's identity.
ADDED_SETTINGS = (
    *REMEDIES,
    "gradient_estimator",
    "fsq_levels",
    "fsq_project_out_bias",
    "temperature_decay",
    "output_bias",
)

# Version of the training recipe, part of every run's identity: a change of
# what a run computes under the same settings gets a new number, so a stored
# run or score of another recipe is never reused.
RECIPE = 2


def _is_levels(text):
    """Whether ``text`` is FSQ levels the layer accepts (its rule, on the parsed values)."""
    try:
        return LAYER_RULES["levels"].holds(options.parse_levels(text))
    except ValueError:
        return False


def setting(default=None, flag=None, help=None, rule=None, applies_to=None, layer_option=False, action=None):
    """A ``RunConfig`` field with everything about it in one place.

    Args:
        default: the value before the preset and the flags fill it.
        flag: its command-line flag (None: not a flag).
        help: the flag's help text.
        rule: an ``options.Rule`` its value must satisfy (checked by ``validate``).
        applies_to: the bottlenecks it means something for (None: all); elsewhere it stays None and its flag is refused.
        layer_option: passed to ``make_bottleneck`` under the field's name.
        action: argparse action for a boolean flag.
    """
    metadata = dict(flag=flag, help=help, rule=rule, applies_to=applies_to, layer_option=layer_option, action=action)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run; each field carries its flag, help, scope and rule (``setting``)."""

    dataset: str = setting(
        "digits", "--dataset", f"one of {', '.join(DATASETS)} (default: digits, bundled)", options.one_of(DATASETS)
    )
    bottleneck: str = setting(
        "soft_vq",
        "--bottleneck",
        f"one of the paper's {', '.join(BOTTLENECKS)}, or the later {', '.join(MODERN_BOTTLENECKS)} (default: soft_vq)",
        options.one_of(BOTTLENECKS + MODERN_BOTTLENECKS),
    )
    data_dir: Optional[str] = setting(
        None, "--data-dir", "folder with the data set's standard files instead of TensorFlow Datasets"
    )
    network: str = setting(
        "mlp",
        "--network",
        "encoder and decoder: the paper's mlp or cnn, or conv_grid, a grid of codes [H/4, W/4, d] as VQ-VAEs "
        "tokenize images (default: the data set's preset)",
        options.one_of(NETWORKS),
    )
    image_shape: tuple = setting((8, 8, 1))
    latent_dim: int = setting(16, "--latent-dim", "d, the size of z_e", options.at_least(1))
    num_codewords: Optional[int] = setting(
        None, "--K", "codebook size", LAYER_RULES["num_codewords"], CODEBOOK_BOTTLENECKS, True
    )
    kl_weight: Optional[float] = setting(
        None,
        "--kl-weight",
        "weight of the KL term (vae 1, beta_vae: the paper's beta)",
        LAYER_RULES["kl_weight"],
        ("vae", "beta_vae"),
        True,
    )
    commitment: Optional[float] = setting(
        None, "--commitment", "commitment weight, the beta of eq. 27", LAYER_RULES["commitment"], QUANTIZERS, True
    )
    vq_weight: Optional[float] = setting(
        None, "--vq-weight", "w, the weight of the whole VQ loss", LAYER_RULES["vq_weight"], QUANTIZERS, True
    )
    noise_std: Optional[float] = setting(
        None,
        "--noise-std",
        "std of the noise added to z_e before soft quantization (training only)",
        LAYER_RULES["noise_std"],
        ("soft_vq",),
        True,
    )
    likelihood: Optional[str] = setting(
        None,
        "--likelihood",
        "soft VQ weights: the notebooks' (+s_k) or textbook (-d s_k)",
        LAYER_RULES["likelihood"],
        ("soft_vq",),
        True,
    )
    ema_decay: Optional[float] = setting(
        None,
        "--ema-decay",
        "update the codebook by moving averages with this decay, e.g. 0.99",
        LAYER_RULES["ema_decay"],
        ("vq",),
        True,
    )
    kmeans_init: Optional[bool] = setting(
        None,
        "--kmeans-init",
        "start the codebook at k-means centres of the first batches' codes",
        None,
        QUANTIZERS,
        True,
        action="store_true",
    )
    dead_code_steps: Optional[int] = setting(
        None,
        "--dead-code-steps",
        "move a codeword nobody used for this many steps onto a random code of the batch",
        LAYER_RULES["dead_code_steps"],
        QUANTIZERS,
        True,
    )
    gradient_estimator: Optional[str] = setting(
        None,
        "--gradient-estimator",
        "how the decoder's gradient reaches z_e: straight_through (the paper's) or rotation (the rotation trick)",
        LAYER_RULES["gradient_estimator"],
        ("vq",),
        True,
    )
    fsq_levels: Optional[str] = setting(
        None,
        "--fsq-levels",
        "levels per FSQ dimension, e.g. 8,4,4 (128 codes, the default)",
        options.Rule("comma-separated integers >= 2, e.g. 8,4,4", _is_levels),
        ("fsq",),
        True,
    )
    fsq_project_out_bias: Optional[str] = setting(
        None,
        "--fsq-project-out-bias",
        "FSQ's output projection bias starts at zeros or uniform in +-1/sqrt(n), as PyTorch's nn.Linear "
        "(conv_grid's default: there every code starts at the zero level, and from a zero bias the decoder's "
        "input is all zeros, where no gradient flows)",
        options.one_of(options.FSQ_PROJECT_OUT_BIASES),
        ("fsq",),
        True,
    )
    temperature_decay: Optional[float] = setting(
        None,
        "--temperature-decay",
        "SQ-VAE: the Gumbel-softmax temperature is exp(-decay * step) (default 1e-5, the authors')",
        LAYER_RULES["temperature_decay"],
        ("sqvae",),
        True,
    )
    output_bias: Optional[str] = setting(
        None,
        "--output-bias",
        "the decoder's output starts at zeros (the notebooks') or data_mean, the training images' mean "
        "(FSQ's default: from zeros its codes collapse to one)",
        options.one_of(options.OUTPUT_BIASES),
    )
    reconstruction_scale: float = setting(1.0)
    pixel_max: float = setting(16.0)
    pixel_offset: float = setting(0.0)
    steps: int = setting(1_500, "--steps", "training iterations", options.at_least(1))
    batch_size: int = setting(32, "--batch-size", "global batch size (default 32)", options.at_least(1))
    lr: float = setting(3e-4, "--lr", "Adam learning rate (default 3e-4)", options.above(0))
    # TF1's AdamOptimizer, as in the notebooks (Keras's default is 1e-7).
    adam_epsilon: float = setting(
        1e-8, "--adam-epsilon", "Adam epsilon (default 1e-8, TF1's AdamOptimizer)", options.above(0)
    )
    seed: int = setting(0, "--seed", "seed for initialisation, shuffling and noise (default 0)", options.at_least(0))
    validation_split: float = setting(
        0.0,
        "--validation-split",
        "hold out this fraction of train; probes then score it instead of the test split",
        options.half_open(0, 1),
    )
    steps_per_execution: Optional[int] = setting(
        None,
        "--steps-per-execution",
        "training steps per call into the TF graph (default: a divisor of the epoch up to 50)",
        options.at_least(1),
    )
    epoch_steps: Optional[int] = setting(
        None,
        "--epoch-steps",
        "steps per Keras epoch, the period of logs, checkpoints and backups (default: about one pass over the data)",
        options.at_least(1),
    )
    jit_compile: Optional[bool] = setting(
        None,
        "--jit-compile",
        "compile the train step with XLA (default: on for the float32 MLP on one "
        "replica, where it is fastest; --no-jit-compile runs TensorFlow's ops with op "
        "determinism instead)",
        action=argparse.BooleanOptionalAction,
    )
    precision: str = setting(
        "float32",
        "--precision",
        "compute precision: float32, or mixed_bfloat16 (matmuls in bfloat16, variables and bottleneck in float32)",
        options.one_of(PRECISIONS),
    )
    distribute: str = setting(
        "auto",
        "--distribute",
        "tf.distribute strategy (default auto: mirrored over several GPUs)",
        options.one_of(DISTRIBUTE),
    )
    out: str = setting("runs", "--out", "folder for runs (default runs/)")
    name: Optional[str] = setting(None, "--name", "run directory name (default from dataset, bottleneck, d, K, seed)")
    recipe: int = setting(RECIPE)

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
        if "checkpoint_every" in fields:  # the name epoch_steps had before
            fields["epoch_steps"] = fields.pop("checkpoint_every")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})

    @classmethod
    def load(cls, run_dir):
        with open(os.path.join(run_dir, "config.json")) as f:
            return cls.from_json(f.read())


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
# Derived from the fields: each setting's flag, and the bottlenecks a setting applies to.
FLAGS = {name: f.metadata["flag"] for name, f in FIELDS.items() if f.metadata.get("flag")}
APPLIES_TO = {name: f.metadata["applies_to"] for name, f in FIELDS.items() if f.metadata.get("applies_to")}
LAYER_OPTIONS = tuple(name for name, f in FIELDS.items() if f.metadata.get("layer_option"))


def layer_options(config):
    """The settings ``make_bottleneck`` takes, as ``{name: value}`` (None: the layer's default)."""
    return {name: getattr(config, name) for name in LAYER_OPTIONS}


# How a run is executed, not what it computes: excluded from its identity.
# (Mirrored replicas, steps per graph call, epoch length and XLA change at
# most the rounding; the data folder is where the same data set lives.)
EXECUTION_FIELDS = (
    "seed",
    "name",
    "out",
    "distribute",
    "data_dir",
    "steps_per_execution",
    "epoch_steps",
    "jit_compile",
)


def run_identity(config):
    """What a run computes: every setting except its seed and how it is executed (``EXECUTION_FIELDS``).

    Runs with equal identities differ only by seed: they are reused, averaged
    and labelled together; runs with different identities never are.
    """
    fields = json.loads(config.to_json())
    return {k: v for k, v in fields.items() if k not in EXECUTION_FIELDS and not (k in ADDED_SETTINGS and v is None)}


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


_SHORT = {
    "batch_size": "batch",
    "noise_std": "noise",
    "kl_weight": "kl",
    "commitment": "commit",
    "vq_weight": "w",
    "validation_split": "val",
    "adam_epsilon": "eps",
    "reconstruction_scale": "rscale",
    "ema_decay": "ema",
    "dead_code_steps": "restart",
    "temperature_decay": "tdecay",
    "output_bias": "outbias",
    "fsq_project_out_bias": "projbias",
}


def default_run_name(c):
    """``DATASET_BOTTLENECK_dD[_KK][_variant...]_seedS``: every departure from the preset is in the name."""
    k = f"_K{c.num_codewords}" if c.num_codewords else ""
    parts = []
    for field, value in variant(c).items():
        if field in ("latent_dim", "num_codewords"):
            continue  # already in the name
        if field == "precision":
            parts.append("bf16" if value == "mixed_bfloat16" else value)
        elif field == "network":
            parts.append(str(value))
        elif field in ("likelihood", "gradient_estimator"):
            parts.append(str(value))
        elif field == "fsq_levels":
            parts.append("levels" + str(value).replace(",", "x"))
        elif field == "kmeans_init":
            parts.append("kmeans")
        else:
            text = (
                f"{value:g}"
                if isinstance(value, float)
                else "x".join(map(str, value))
                if isinstance(value, list)
                else str(value)
            )
            parts.append(_SHORT.get(field, field) + text)
    variant_part = "".join("_" + p for p in parts)
    return f"{c.dataset}_{c.bottleneck}_d{c.latent_dim}{k}{variant_part}_seed{c.seed}"


STEPS_PER_EXECUTION = 50  # steps per call into the TF graph; see results/benchmarks.md


def default_steps_per_execution(steps, epoch_steps=None):
    """The largest ``k <= STEPS_PER_EXECUTION`` dividing ``steps`` (and ``epoch_steps``)."""
    period = math.gcd(steps, epoch_steps) if epoch_steps else steps
    return max(k for k in range(1, STEPS_PER_EXECUTION + 1) if period % k == 0)


def _epoch_period(steps, spe, target):
    """The longest epoch <= ``target`` steps dividing ``steps``, a multiple of ``spe``, at least target / 4;
    else None.
    """
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
    if config.epoch_steps:
        if config.steps % config.epoch_steps:
            raise UsageError(f"--epoch-steps {config.epoch_steps} must divide --steps {config.steps}")
        return config.epoch_steps
    target = max(250, n_train // config.batch_size)
    period = _epoch_period(config.steps, config.steps_per_execution, target)
    if period is None:

        def works(steps):
            return _epoch_period(steps, default_steps_per_execution(steps), target) is not None

        nearest = min(
            (s for s in range(max(1, config.steps - target), config.steps + target + 1) if works(s)),
            key=lambda s: abs(s - config.steps),
        )
        raise UsageError(
            f"--steps {config.steps} has no divisor between {target // 4} and {target} steps (about one pass over "
            f"{n_train} images at batch {config.batch_size}) for the epochs that log, back up and checkpoint; "
            f"use --steps {nearest}, or set --epoch-steps"
        )
    return period


def resolve_config(dataset="digits", bottleneck="soft_vq", **flags):
    """Fill a ``RunConfig`` from the preset of ``dataset``; flags set to None keep the preset."""
    config = _fill(dataset, bottleneck, flags)
    if config.steps_per_execution is None and config.steps >= 1:
        config.steps_per_execution = (
            1 if config.distribute == "multi_worker" else default_steps_per_execution(config.steps, config.epoch_steps)
        )
    if config.name is None:
        config.name = default_run_name(config)
    validate(config)
    return config


def _fill(dataset, bottleneck, flags):
    """The preset of ``dataset`` for ``bottleneck`` with ``flags`` applied (not yet named or validated)."""
    if dataset not in PRESETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if bottleneck not in BOTTLENECKS + MODERN_BOTTLENECKS:
        known = ", ".join(BOTTLENECKS + MODERN_BOTTLENECKS)
        raise UsageError(f"unknown bottleneck {bottleneck!r}; choose one of {known}")
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
        fsq_levels="8,4,4",
        fsq_project_out_bias="uniform" if bottleneck == "fsq" and flags.get("network") == "conv_grid" else None,
        temperature_decay=1e-5,
        output_bias="data_mean" if bottleneck == "fsq" else None,
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
    for name, users in APPLIES_TO.items():
        if bottleneck not in users:
            defaults[name] = None
    # A remedy switched off is None (see REMEDIES), however it was written; so is a zero output bias where
    # it is the default (the identity of runs from before the setting existed).
    given = {k: v for k, v in flags.items() if v is not None and not (k in REMEDIES and v is False)}
    for name in ("output_bias", "fsq_project_out_bias"):
        if given.get(name) == "zeros" and defaults[name] is None:
            del given[name]
    unknown = set(given) - {f.name for f in dataclasses.fields(RunConfig)}
    if unknown:
        raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for name in sorted(given):
        if name in APPLIES_TO and bottleneck not in APPLIES_TO[name]:
            raise UsageError(f"{FLAGS[name]} applies to {' and '.join(APPLIES_TO[name])} only, not {bottleneck}")
    return RunConfig(dataset=dataset, bottleneck=bottleneck, **{**defaults, **given})


_LIST_VALUED = ("fsq_levels",)
_NOT_SETTABLE = ("dataset", "out", "name", "seed", "validation_split", "image_shape", "recipe", "data_dir")


def parse_settings(text, where):
    """``"key=value,key=value"`` -> ``{key: typed value}`` of ``RunConfig`` fields (``where`` names the flag
    in errors).
    """
    types = {f.name: f.type for f in dataclasses.fields(RunConfig)}
    settings = {}
    for item in _split_assignments(text):
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


def _split_assignments(text):
    """Split ``text`` at commas, keeping a list value whole: ``"fsq_levels=8,4,4,seed=1"`` has two items.

    A part without ``=`` continues the previous item when that item sets a list-valued key; otherwise it
    stays a part of its own (and ``parse_settings`` refuses it).
    """
    items = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in part and items and items[-1].partition("=")[0].strip().replace("-", "_") in _LIST_VALUED:
            items[-1] += "," + part
        else:
            items.append(part)
    return items


def _parse_bool(value):
    if value.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
    return value.strip().lower() in ("true", "1")


def applicable(bottleneck, settings):
    """The part of ``settings`` that applies to ``bottleneck`` (for commands that train several)."""
    return {k: v for k, v in settings.items() if k not in APPLIES_TO or bottleneck in APPLIES_TO[k]}


def validate(c):
    """Reject impossible settings with one line that names the flag.

    Each field's own rule (``setting(rule=...)``, the layers' rules for layer
    options) comes first, then the rules that tie several fields together.
    """
    for name, field in FIELDS.items():
        rule = field.metadata.get("rule")
        if rule is not None:
            try:
                rule.check(getattr(c, name), field.metadata.get("flag") or name)
            except ValueError as error:
                raise UsageError(str(error)) from None
    spe = 1 if c.steps_per_execution is None else c.steps_per_execution  # None only when --steps is invalid
    checks = [
        # Keras 3.15's multi-step loop feeds no value to a placeholder under MultiWorkerMirroredStrategy.
        (spe == 1 or c.distribute != "multi_worker", "--steps-per-execution must be 1 with --distribute multi_worker"),
        (c.steps % spe == 0, f"--steps-per-execution {spe} must divide --steps {c.steps}"),
        (
            not c.epoch_steps or c.epoch_steps % spe == 0,
            f"--steps-per-execution {spe} must divide --epoch-steps {c.epoch_steps}",
        ),
        (bool(c.name) and os.sep not in c.name, f"--name must be a plain directory name, got {c.name!r}"),
        (
            c.network != "conv_grid" or (c.image_shape[0] % 4 == 0 and c.image_shape[1] % 4 == 0),
            f"--network conv_grid needs image height and width divisible by 4, got {tuple(c.image_shape)}",
        ),
        (
            c.network != "cnn" or (c.image_shape[0] % 16 == 0 and c.image_shape[1] % 16 == 0),
            f"--network cnn needs image height and width divisible by 16, got {tuple(c.image_shape)}; "
            "use --network mlp or conv_grid",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
