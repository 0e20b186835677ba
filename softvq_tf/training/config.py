"""Resolve a run's configuration: the data set's preset, the bottleneck's defaults, the flags, a name, checks.

The concepts live in their own modules (``presets``, ``run_config``,
``identity``, ``schedule``); their public names are importable from here too.
"""

from softvq_tf.training.identity import (  # noqa: F401
    ADDED_SETTINGS,
    EXECUTION_FIELDS,
    default_run_name,
    identity_changes,
    identity_key,
    run_identity,
    variant,
    variant_label,
)
from softvq_tf.training.presets import DATASETS, PRESETS, DatasetPreset  # noqa: F401
from softvq_tf.training.run_config import (  # noqa: F401
    APPLIES_TO,
    DISTRIBUTE,
    FIELDS,
    FLAGS,
    LAYER_OPTIONS,
    NETWORKS,
    OUTPUT_BIASES,
    PRECISIONS,
    RECIPE,
    REMEDIES,
    RunConfig,
    applicable,
    fill_preset,
    layer_options,
    parse_settings,
    setting,
    validate,
)
from softvq_tf.training.schedule import STEPS_PER_EXECUTION, default_steps_per_execution, epoch_length  # noqa: F401


def resolve_config(dataset="digits", bottleneck=None, **flags):
    """Fill a ``RunConfig`` from the preset of ``dataset``; flags set to None keep the preset.

    ``bottleneck`` defaults to the paper's proposal, the soft VQ-VAE.
    """
    config = fill_preset(dataset, bottleneck or RunConfig.bottleneck, flags)
    if config.steps_per_execution is None and config.steps >= 1:
        config.steps_per_execution = (
            1 if config.distribute == "multi_worker" else default_steps_per_execution(config.steps, config.epoch_steps)
        )
    if config.name is None:
        config.name = default_run_name(config)
    validate(config)
    return config
