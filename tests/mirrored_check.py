"""Run by test_distribute.py in its own process: 1 replica vs MirroredStrategy over 2 logical CPUs.

Prints one JSON line with, per bottleneck, the per-epoch losses and metrics of
both runs and whether the codebook stayed identical on every replica.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from softvq_tf.training.config import resolve_config  # noqa: E402
from softvq_tf.training.errors import UsageError  # noqa: E402
from softvq_tf.training.fit import train  # noqa: E402

out = sys.argv[1]
report = {}
# The remedies' statistics must be summed (and codes gathered) over replicas: same codebook as one replica.
# Each configuration trains twice (about 5 s each), so each one covers what no other does: the soft quantizer
# plain on a grid and with its remedies on the MLP, hard VQ plain on the MLP and with all three remedies on a
# grid (every position's statistics summed over replicas), and SQ-VAE's state.
REMEDIES = {
    "soft_vq_remedies": ("soft_vq", dict(kmeans_init=True, dead_code_steps=3)),
    "soft_vq_grid": ("soft_vq", dict(network="conv_grid")),
    "vq_grid_remedies": ("vq", dict(network="conv_grid", ema_decay=0.9, kmeans_init=True, dead_code_steps=3)),
}
for key in ("vq", "sqvae", *REMEDIES):
    bottleneck, remedies = REMEDIES.get(key, (key, {}))
    runs = {}
    for mode in ("default", "mirrored"):
        keras.backend.clear_session()
        config = resolve_config(
            "digits",
            bottleneck,
            steps=20,
            epoch_steps=10,
            batch_size=32,
            distribute=mode,
            latent_dim=8,
            num_codewords=16,
            out=out,
            name=f"{key}_{mode}",
            jit_compile=False,
            **remedies,
        )  # same arithmetic on both sides: XLA is the default on one replica only
        result = train(config, verbose=0, log=lambda *a: None)
        codebook = result.model.bottleneck.codebook.value
        copies = [v.numpy() for v in result.strategy.experimental_local_results(codebook)]
        runs[mode] = {
            "replicas": result.strategy.num_replicas_in_sync,
            "history": result.history,
            "codebook_copies": len(copies),
            "codebook_in_sync": all((c == copies[0]).all() for c in copies),
            "codebook": copies[0].tolist(),
        }
        if key == "sqvae":  # its state: the step count behind the temperature
            steps = result.strategy.experimental_local_results(result.model.bottleneck.step.value)
            runs[mode]["step_copies"] = [float(v.numpy()) for v in steps]
    report[key] = runs
keras.backend.clear_session()
try:
    train(resolve_config("digits", "vq", steps=2, batch_size=33, distribute="mirrored", out=out, name="odd"), verbose=0)
    report["odd_batch_error"] = None
except UsageError as error:
    report["odd_batch_error"] = str(error)
print("REPORT " + json.dumps(report))
