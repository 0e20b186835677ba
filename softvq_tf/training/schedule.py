"""The schedule of a run: steps per Keras epoch (the period of logs, backups and checkpoints) and per graph call."""

import math

from softvq_tf.training.errors import UsageError

# Steps per call into the TF graph: enough to hide the call overhead (results/benchmarks.md).
STEPS_PER_EXECUTION = 50


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
