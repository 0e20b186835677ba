"""Where and how a run executes: the ``tf.distribute`` strategy, XLA or op determinism, and the execution path.

The execution path is what changes a run's final weights besides its
settings (``identity.run_identity``): runs with the same identity and seed are
bit-identical only on the same path.
"""

import json
import os
import platform

import keras
import tensorflow as tf

from softvq_tf import compat
from softvq_tf.training import runtime
from softvq_tf.training.errors import UsageError


def set_op_determinism(enabled):
    """TensorFlow's op determinism, for runs without XLA.

    Keras silently drops ``jit_compile`` when op determinism is on, so an XLA
    run turns it off. XLA on CPU is bit-reproducible in practice: the same
    command twice gives the same weights digest, and a run killed and resumed
    matches an uninterrupted one (tests/test_distribute.py, on the XLA path).
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        compat.disable_op_determinism()


COLLECTIVE_TIMEOUT_SECONDS = 600  # far above a step, XLA's first compile included


def make_strategy(mode):
    """``auto``: MirroredStrategy over several GPUs, else the default strategy.

    ``mirrored`` mirrors over every GPU, or every logical CPU device when there
    is no GPU (useful for tests); ``multi_worker`` reads ``TF_CONFIG``.
    """
    if mode == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UsageError(
                "--distribute multi_worker needs TF_CONFIG (cluster and task) in the environment; "
                "see docs/guide/scaling.md"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise UsageError("TF_CONFIG is not valid JSON") from None
        # A collective that waits longer than this for a peer fails, so a worker that loses its peer exits
        # instead of hanging (on loopback a dead peer's closed socket ends it at once).
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        with runtime.quietly():  # starts the runtime: its C++ start-up log, as in runtime.start_tensorflow
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if mode == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        # CPU replicas share host memory: reduce on one device rather than with collectives.
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if mode == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Only the chief writes the run directory (multi-worker: task 0 of ``worker``, or ``chief``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def use_xla(config, strategy):
    """``--jit-compile`` if given; by default XLA only where it measured fastest (results/benchmarks.md).

    That is the float32 MLP on a single replica. XLA's CPU code ran the CNN's
    convolutions at a fifth of the speed of TensorFlow's own kernels, and the
    bfloat16 MLP below the float32 one.
    """
    if config.jit_compile is not None:
        return config.jit_compile
    distributed = isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))
    return (
        not distributed
        and strategy.num_replicas_in_sync == 1
        and config.network == "mlp"
        and config.precision == "float32"
    )


def execution_path(xla, strategy, steps_per_execution):
    """How a run is executed, where that changes its final weights (not what it computes: see ``run_identity``).

    Runs with the same identity and seed reach bit-identical weights only on
    the same path: XLA fuses and reorders floating-point work, a mirrored
    batch is summed over replicas in another order, several steps per graph
    call compile to another program, and other TensorFlow or Keras releases
    may change kernels, as may another CPU's instruction set. Patch releases
    are assumed to keep them.
    """
    return {
        "xla": bool(xla),
        "replicas": int(strategy.num_replicas_in_sync),
        "steps_per_execution": steps_per_execution,
        "tensorflow": ".".join(tf.__version__.split(".")[:2]),
        "keras": ".".join(keras.__version__.split(".")[:2]),
        "cpu_features": cpu_features(),
    }


# Instruction-set extensions that XLA's and oneDNN's CPU kernels choose their code by.
KERNEL_CPU_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_features():
    """The ``KERNEL_CPU_FEATURES`` this CPU has (Linux), else the machine name: kernels differ across them."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = [name for name in KERNEL_CPU_FEATURES if name in flags]
    return f"{platform.machine()}: {' '.join(found)}".strip()


def planned_execution(config):
    """The ``execution_path`` that ``train(config)`` would take on this machine (None: cannot tell before it starts)."""
    if config.distribute == "multi_worker":
        return None
    strategy = make_strategy(config.distribute)
    return execution_path(use_xla(config, strategy), strategy, config.steps_per_execution)


def task_name(strategy):
    """``worker-N`` (or ``chief-0``) for a worker of a multi-worker job, None on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and compat.in_multi_worker_mode(strategy)
    return f"{resolver.task_type}-{resolver.task_id}" if multi and resolver and resolver.task_type else None


# What a collective raises when a peer worker died or stopped answering.
PEER_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
