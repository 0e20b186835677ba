"""The autoencoder model: shapes, losses, save/reload and the exported encoder."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script

from softvq_tf.layers.registry import PAPER_NAMES as BOTTLENECKS
from softvq_tf.models.networks import build_decoder, build_encoder, start_output_at_data_mean
from softvq_tf.training.config import RunConfig, resolve_config
from softvq_tf.training.data import load_splits, preprocess
from softvq_tf.training.export import load_encoder
from softvq_tf.training.fit import build_model


@pytest.mark.parametrize("network, shape", [("mlp", (28, 28, 1)), ("cnn", (32, 32, 3))])
def test_networks_have_the_papers_shapes(network, shape):
    encoder = build_encoder(network, shape, latent_dim=12, head_units=5)
    decoder = build_decoder(network, shape, latent_dim=12)
    z_e, head = encoder(tf.zeros([2, *shape]))
    assert z_e.shape == (2, 12) and head.shape == (2, 5)
    assert decoder(z_e).shape == (2, *shape)
    if network == "mlp":
        assert [layer.units for layer in encoder.layers if isinstance(layer, keras.layers.Dense)] == [
            500,
            500,
            2000,
            12,
            5,
        ]
        assert [layer.units for layer in decoder.layers if isinstance(layer, keras.layers.Dense)] == [
            2000,
            500,
            500,
            784,
        ]
    else:
        assert [layer.filters for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)] == [
            64,
            128,
            256,
            512,
        ]
        assert [layer.filters for layer in decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)] == [
            512,
            256,
            128,
            3,
        ]


@pytest.mark.parametrize("bottleneck", BOTTLENECKS)
def test_saved_and_reloaded_autoencoder_gives_identical_outputs(bottleneck, tmp_path):
    config = resolve_config(
        "digits", bottleneck, latent_dim=6, num_codewords=7 if bottleneck in ("vq", "soft_vq") else None
    )
    model = build_model(config, data_variance=0.1)
    x = tf.random.stateless_uniform([5, 8, 8, 1], seed=[1, 2])
    y = model(x, training=False).numpy()
    loss = float(model.compute_loss(x, None, model(x, training=True)))
    assert np.isfinite(loss) and loss > 0
    path = str(tmp_path / "ae.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.bottleneck) is type(model.bottleneck)
    np.testing.assert_array_equal(reloaded(x, training=False).numpy(), y)


@pytest.mark.slow
def test_run_directory_holds_every_output(digits_run):
    for name in (
        "config.json",
        "history.json",
        "epochs.csv",
        "reconstructions.png",
        "codebook.png",
        "autoencoder.keras",
        "encoder/saved_model.pb",
        "logs",
    ):
        assert os.path.exists(os.path.join(digits_run, name)), name
    import matplotlib.image

    for figure in ("reconstructions.png", "codebook.png"):
        assert open(os.path.join(digits_run, figure), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(os.path.join(digits_run, figure)).ndim == 3  # decodes as an image
    assert not os.path.exists(os.path.join(digits_run, "backup"))  # removed once training finished
    assert not [n for n in os.listdir(digits_run) if ".tmp-" in n]
    history = json.load(open(os.path.join(digits_run, "history.json")))["history"]
    assert {"loss", "reconstruction_loss", "bottleneck_loss", "perplexity", "codewords_in_use"} <= set(history)
    assert 1 <= history["codewords_in_use"][-1] <= 8 and 1 <= history["perplexity"][-1] <= 8
    assert RunConfig.load(digits_run).bottleneck == "soft_vq"


@pytest.mark.slow
def test_exported_encoder_reloads_without_softvq_tf_and_gives_same_latents(digits_run, tmp_path):
    config = RunConfig.load(digits_run)
    images = load_splits("digits").x_eval[:16]
    model = keras.saving.load_model(os.path.join(digits_run, "autoencoder.keras"))
    expected = model.encode(preprocess(images, config.pixel_max, config.pixel_offset))[0].numpy()
    np.testing.assert_allclose(
        load_encoder(os.path.join(digits_run, "encoder"))(images), expected, rtol=1e-5, atol=1e-6
    )

    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "z = f(images=tf.constant(np.load(sys.argv[2])))['z_e'].numpy()\n"
        "np.save(sys.argv[3], z)\n"
        "assert not [m for m in sys.modules if m.startswith('softvq_tf')], 'softvq_tf was imported'\n"
    )
    result = run_script(
        ["-c", script, os.path.join(digits_run, "encoder"), str(tmp_path / "images.npy"), str(tmp_path / "z.npy")],
        env={"PYTHONPATH": ""},
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fused_adam_matches_keras_adam(jit_compile):
    from softvq_tf.models.optimizers import FusedAdam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 4)).astype("float32")
    gradients = [rng.normal(size=(6, 4)).astype("float32") * 10 ** rng.uniform(-4, 1) for _ in range(20)]
    finals = []
    for optimizer in (keras.optimizers.Adam(1e-2), FusedAdam(1e-2)):
        variable = keras.Variable(start)
        step = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]), jit_compile=jit_compile)
        for g in gradients:
            step(tf.constant(g))
        finals.append(variable.numpy())
    assert not np.allclose(finals[0], start)
    np.testing.assert_allclose(finals[1], finals[0], rtol=1e-5, atol=1e-6)


def test_fused_adam_survives_save_and_reload(tmp_path):
    from softvq_tf.models.optimizers import FusedAdam

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(FusedAdam(5e-3, beta_1=0.8), "mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.optimizer, FusedAdam) and restored.optimizer.beta_1 == 0.8
    assert int(restored.optimizer.iterations.numpy()) == 1


def test_output_bias_starts_the_decoder_at_the_data_mean_and_is_fsqs_default():
    fsq = resolve_config("digits", "fsq")
    assert fsq.output_bias == "data_mean" and resolve_config("digits", "soft_vq").output_bias is None
    assert resolve_config("digits", "soft_vq", output_bias="zeros").output_bias is None  # the default: same run
    assert resolve_config("digits", "fsq", output_bias="zeros").name.endswith("_outbiaszeros_seed0")
    mean_image = np.linspace(0.0, 1.0, 64).reshape(8, 8, 1)
    model = build_model(fsq, data_variance=0.1, mean_image=mean_image)
    clipped = np.clip(mean_image.reshape(-1), 1e-3, 1 - 1e-3)
    output_bias = model.decoder.get_layer("pixels").bias.numpy()
    np.testing.assert_allclose(output_bias, np.log(clipped / (1 - clipped)), rtol=1e-5)
    with pytest.raises(ValueError, match="mean_image"):
        build_model(fsq, data_variance=0.1)
    cnn_decoder = build_decoder("cnn", (16, 16, 3), latent_dim=4)
    colour_image = np.broadcast_to(np.array([0.1, -0.2, 0.3]), (16, 16, 3))
    start_output_at_data_mean(cnn_decoder, "cnn", colour_image)  # the CNN's linear output: each channel's mean
    np.testing.assert_allclose(cnn_decoder.get_layer("pixels").bias.numpy(), [0.1, -0.2, 0.3], rtol=1e-6)
