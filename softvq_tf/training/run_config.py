"""``RunConfig``: everything that defines one training run, each field with its flag, help and value rule.

The command line, the refusal of flags that do not apply to a bottleneck, the
checks and ``build_model``'s layer settings are all derived from the fields;
which bottlenecks a layer setting applies to, and its default per data set,
come from the bottleneck registry. A resolved ``RunConfig`` is written as JSON
into the run directory and read back by the evaluation.
"""

import argparse
import dataclasses
import json
import math
import os
import typing
from typing import Optional

from softvq_tf.layers import registry
from softvq_tf.layers.rules import LAYER_RULES, Rule, above, at_least, half_open, one_of, parse_levels
from softvq_tf.training.errors import UsageError
from softvq_tf.training.presets import DATASETS, PRESETS

NETWORKS = ("mlp", "cnn", "conv_grid")
DISTRIBUTE = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16")
# Where the decoder's output bias starts (the notebooks': zeros).
OUTPUT_BIASES = ("zeros", "data_mean")
# Codebook-collapse remedies (not in the paper): None means off, however it was written (see identity.py).
REMEDIES = ("ema_decay", "kmeans_init", "dead_code_steps")

# Version of the training recipe, part of every run's identity: a change of
# what a run computes under the same settings gets a new number, so a stored
# run or score of another recipe is never reused.
RECIPE = 2


def _is_levels(text):
    """Whether ``text`` is FSQ levels the layer accepts (its rule, on the parsed values)."""
    try:
        return LAYER_RULES["levels"].holds(parse_levels(text))
    except ValueError:
        return False


def setting(default=None, *, flag=None, help=None, rule=None, action=None):
    """A ``RunConfig`` field with everything about it in one place.

    Args:
        default: the value before the preset and the flags fill it.
        flag: its command-line flag (None: not a flag).
        help: the flag's help text.
        rule: a ``layers.rules.Rule`` its value must satisfy (checked by ``validate``).
        action: argparse action for a boolean flag.

    A field whose name is a layer setting in the registry applies to the
    bottlenecks that take it; for the others it stays None and its flag is refused.
    """
    return dataclasses.field(default=default, metadata=dict(flag=flag, help=help, rule=rule, action=action))


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run; each field carries its flag, help and rule (``setting``)."""

    dataset: str = setting(
        "digits",
        flag="--dataset",
        help=f"one of {', '.join(DATASETS)} (default: digits, bundled)",
        rule=one_of(DATASETS),
    )
    bottleneck: str = setting(
        registry.PROPOSED,
        flag="--bottleneck",
        help=f"one of the paper's {', '.join(registry.PAPER_NAMES)}, or the later "
        f"{', '.join(n for n in registry.NAMES if n not in registry.PAPER_NAMES)} (default: {registry.PROPOSED})",
        rule=one_of(registry.NAMES),
    )
    data_dir: Optional[str] = setting(
        flag="--data-dir", help="folder with the data set's standard files instead of TensorFlow Datasets"
    )
    network: str = setting(
        "mlp",
        flag="--network",
        help="encoder and decoder: the paper's mlp or cnn, or conv_grid, a grid of codes [H/4, W/4, d] as VQ-VAEs "
        "tokenize images (default: the data set's preset)",
        rule=one_of(NETWORKS),
    )
    image_shape: tuple = setting((8, 8, 1))
    latent_dim: int = setting(16, flag="--latent-dim", help="d, the size of z_e", rule=at_least(1))
    num_codewords: Optional[int] = setting(flag="--K", help="codebook size", rule=LAYER_RULES["num_codewords"])
    kl_weight: Optional[float] = setting(
        flag="--kl-weight",
        help="weight of the KL term (vae 1, beta_vae: the paper's beta)",
        rule=LAYER_RULES["kl_weight"],
    )
    commitment: Optional[float] = setting(
        flag="--commitment", help="commitment weight, the beta of eq. 27", rule=LAYER_RULES["commitment"]
    )
    vq_weight: Optional[float] = setting(
        flag="--vq-weight", help="w, the weight of the whole VQ loss", rule=LAYER_RULES["vq_weight"]
    )
    noise_std: Optional[float] = setting(
        flag="--noise-std",
        help="std of the noise added to z_e before soft quantization (training only)",
        rule=LAYER_RULES["noise_std"],
    )
    likelihood: Optional[str] = setting(
        flag="--likelihood",
        help="soft VQ weights: the notebooks' (+s_k) or textbook (-d s_k)",
        rule=LAYER_RULES["likelihood"],
    )
    soft_decode: Optional[str] = setting(
        flag="--soft-decode",
        help="what the soft VQ decoder reads: posterior_mean (the paper's), most_probable (hard tokens, the gradient "
        "copied to z_e) or sample",
        rule=LAYER_RULES["decode"],
    )
    hardening_steps: Optional[int] = setting(
        flag="--hardening-steps",
        help="soft to hard: the soft VQ posterior's temperature falls from 1 to 0 (one-hot) over this many steps",
        rule=LAYER_RULES["hardening_steps"],
    )
    entropy_weight: Optional[float] = setting(
        flag="--entropy-weight",
        help="weight of a penalty on the soft VQ posterior's mean entropy (peakedness)",
        rule=LAYER_RULES["entropy_weight"],
    )
    usage_weight: Optional[float] = setting(
        flag="--usage-weight",
        help="weight of a reward on the entropy of the batch's mean soft VQ posterior (codebook usage)",
        rule=LAYER_RULES["usage_weight"],
    )
    ema_decay: Optional[float] = setting(
        flag="--ema-decay",
        help="update the codebook by moving averages with this decay, e.g. 0.99",
        rule=LAYER_RULES["ema_decay"],
    )
    kmeans_init: Optional[bool] = setting(
        flag="--kmeans-init",
        help="start the codebook at k-means centres of the first batches' codes",
        action="store_true",
    )
    dead_code_steps: Optional[int] = setting(
        flag="--dead-code-steps",
        help="move a codeword nobody used for this many steps onto a random code of the batch",
        rule=LAYER_RULES["dead_code_steps"],
    )
    gradient_estimator: Optional[str] = setting(
        flag="--gradient-estimator",
        help="how the decoder's gradient reaches z_e: straight_through (the paper's) or rotation (the rotation trick)",
        rule=LAYER_RULES["gradient_estimator"],
    )
    fsq_levels: Optional[str] = setting(
        flag="--fsq-levels",
        help="levels per FSQ dimension, e.g. 8,4,4 (128 codes, the default)",
        rule=Rule("comma-separated integers >= 2, e.g. 8,4,4", _is_levels),
    )
    fsq_project_out_bias: Optional[str] = setting(
        flag="--fsq-project-out-bias",
        help="FSQ's output projection bias starts at zeros or uniform in +-1/sqrt(n), as PyTorch's nn.Linear "
        "(conv_grid's default: there every code starts at the zero level, and from a zero bias the decoder's "
        "input is all zeros, where no gradient flows)",
        rule=LAYER_RULES["project_out_bias"],
    )
    temperature_decay: Optional[float] = setting(
        flag="--temperature-decay",
        help="SQ-VAE: the Gumbel-softmax temperature is exp(-decay * step) (default 1e-5, the authors')",
        rule=LAYER_RULES["temperature_decay"],
    )
    output_bias: Optional[str] = setting(
        flag="--output-bias",
        help="the decoder's output starts at zeros (the notebooks') or data_mean, the training images' mean "
        "(FSQ's default: from zeros its codes collapse to one)",
        rule=one_of(OUTPUT_BIASES),
    )
    reconstruction_scale: float = setting(1.0)
    pixel_max: float = setting(16.0)
    pixel_offset: float = setting(0.0)
    steps: int = setting(1_500, flag="--steps", help="training iterations", rule=at_least(1))
    batch_size: int = setting(32, flag="--batch-size", help="global batch size (default 32)", rule=at_least(1))
    lr: float = setting(3e-4, flag="--lr", help="Adam learning rate (default 3e-4)", rule=above(0))
    # TF1's AdamOptimizer, as in the notebooks (Keras's default is 1e-7).
    adam_epsilon: float = setting(
        1e-8, flag="--adam-epsilon", help="Adam epsilon (default 1e-8, TF1's AdamOptimizer)", rule=above(0)
    )
    seed: int = setting(
        0, flag="--seed", help="seed for initialisation, shuffling and noise (default 0)", rule=at_least(0)
    )
    validation_split: float = setting(
        0.0,
        flag="--validation-split",
        help="hold out this fraction of train; probes then score it instead of the test split",
        rule=half_open(0, 1),
    )
    steps_per_execution: Optional[int] = setting(
        flag="--steps-per-execution",
        help="training steps per call into the TF graph (default: a divisor of the epoch up to 50)",
        rule=at_least(1),
    )
    epoch_steps: Optional[int] = setting(
        flag="--epoch-steps",
        help="steps per Keras epoch, the period of logs, checkpoints and backups (default: about one pass over "
        "the data)",
        rule=at_least(1),
    )
    jit_compile: Optional[bool] = setting(
        flag="--jit-compile",
        help="compile the train step with XLA (default: on for the float32 MLP on one replica, where it is "
        "fastest; --no-jit-compile runs TensorFlow's ops with op determinism instead)",
        action=argparse.BooleanOptionalAction,
    )
    precision: str = setting(
        "float32",
        flag="--precision",
        help="compute precision: float32, or mixed_bfloat16 (matmuls in bfloat16, variables and bottleneck in float32)",
        rule=one_of(PRECISIONS),
    )
    distribute: str = setting(
        "auto",
        flag="--distribute",
        help="tf.distribute strategy (default auto: mirrored over several GPUs)",
        rule=one_of(DISTRIBUTE),
    )
    out: str = setting("runs", flag="--out", help="folder for runs (default runs/)")
    name: Optional[str] = setting(
        flag="--name", help="run directory name (default from dataset, bottleneck, d, K, seed)"
    )
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
# Derived from the fields and the registry: each setting's flag, and the bottlenecks a layer setting applies to.
FLAGS = {name: f.metadata["flag"] for name, f in FIELDS.items() if f.metadata.get("flag")}
LAYER_OPTIONS = tuple(name for name in FIELDS if name in registry.LAYER_SETTINGS)
APPLIES_TO = {name: registry.applies_to(name) for name in LAYER_OPTIONS}


def layer_options(config):
    """The layer settings that apply to the config's bottleneck, as ``{name: value}`` (None: the layer's default)."""
    return registry.applicable(config.bottleneck, {name: getattr(config, name) for name in LAYER_OPTIONS})


def fill_preset(dataset, bottleneck, flags):
    """The preset of ``dataset`` for ``bottleneck`` with ``flags`` applied (not yet named or validated)."""
    if dataset not in PRESETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if bottleneck not in registry.REGISTRY:
        raise UsageError(f"unknown bottleneck {bottleneck!r}; choose one of {', '.join(registry.NAMES)}")
    p, entry = PRESETS[dataset], registry.REGISTRY[bottleneck]
    defaults = dict(
        network=p.network,
        image_shape=p.image_shape,
        latent_dim=p.latent_dim,
        reconstruction_scale=float(math.prod(p.image_shape) if entry.scales_reconstruction else 1.0),
        pixel_max=p.pixel_max,
        pixel_offset=p.pixel_offset,
        steps=p.steps,
    )
    defaults.update({name: getattr(p, field) for name, field in entry.preset_defaults.items()})
    defaults.update(entry.defaults)
    defaults.update(entry.network_defaults.get(flags.get("network") or p.network, {}))
    # A remedy switched off is None, however it was written; so is a zero output bias where it is the
    # default (the identity of runs from before the setting existed).
    given = {k: v for k, v in flags.items() if v is not None and not (k in REMEDIES and v is False)}
    for name in ("output_bias", "fsq_project_out_bias"):
        if given.get(name) == "zeros" and defaults.get(name) is None:
            del given[name]
    unknown = set(given) - set(FIELDS)
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
    return registry.applicable(bottleneck, settings)


def validate(c):
    """Reject impossible settings with one line that names the flag.

    Each field's own rule comes first (the layers' rules for layer settings),
    then the rules that tie several fields together.
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
