"""A run's identity: what it computes, so that stored runs and scores are reused only for the same computation.

Runs with equal identities differ only by seed: they are reused, averaged and
labelled together. A run's default name spells out where it departs from its
data set's preset. Settings added after runs were first stored stay out of
the identity while unset, so the runs stored by older versions keep theirs.
"""

import hashlib
import json

from softvq_tf.training.run_config import REMEDIES, fill_preset

# Every setting added after runs were first stored: while unset (None) it stays out of a run's identity.
ADDED_SETTINGS = (
    *REMEDIES,
    "gradient_estimator",
    "fsq_levels",
    "fsq_project_out_bias",
    "temperature_decay",
    "output_bias",
    "soft_decode",
    "hardening_steps",
    "entropy_weight",
    "usage_weight",
)

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
    preset = run_identity(fill_preset(config.dataset, config.bottleneck, {}))
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
