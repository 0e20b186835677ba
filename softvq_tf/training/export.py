"""Export the encoder as a self-contained SavedModel.

``serving_default`` maps raw images exactly as the data set stores them
(``uint8 [B, H, W, C]``) to ``{"z_e": [B, d]}``; the preprocessing lives inside
the graph, so the export loads with plain ``tf.saved_model.load`` in a process
that never imports softvq_tf. The directory is written under a temporary name
and renamed when complete.
"""

import keras
import numpy as np
import tensorflow as tf

from softvq_tf.training import rundir
from softvq_tf.training.data import preprocess


def export_encoder(model, config, path):
    """Write ``model``'s encoder to ``path`` (a directory) atomically."""
    archive = keras.export.ExportArchive()
    archive.track(model.encoder)

    def serve(images):
        z_e, _ = model.encode(preprocess(images, config.pixel_max, config.pixel_offset), training=False)
        return {"z_e": tf.cast(z_e, tf.float32)}

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None, *config.image_shape], tf.uint8, name="images")]
    )
    with rundir.atomic_path(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def load_encoder(path):
    """Load an exported encoder; returns a function ``uint8 images -> z_e`` (NumPy)."""
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]

    def encode(images, batch_size=1024):
        chunks = [
            serve(images=tf.constant(images[i : i + batch_size]))["z_e"].numpy()
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    return encode
