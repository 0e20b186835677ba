"""The SVHN and CIFAR-10 readers on files in exactly their published formats, built from real images."""

import os
import pickle

import numpy as np
import pytest
import scipy.io
from conftest import FASHION, assert_one_line_error, run_script

from softvq_tf.training.data import load_splits


@pytest.fixture(scope="module")
def colour_images():
    """Real Fashion-MNIST images padded to 32x32, with three different channels so that any mix-up shows."""
    if not os.path.isdir(FASHION):
        pytest.fail(f"{FASHION} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    full = load_splits("fashion_mnist", FASHION)

    def colour(x):
        g = np.pad(x[..., 0], ((0, 0), (2, 2), (2, 2)))
        return np.stack([g, 255 - g, g // 2], axis=-1).astype(np.uint8)  # [N, 32, 32, 3]

    return colour(full.x_train[:96]), full.y_train[:96], colour(full.x_eval[:40]), full.y_eval[:40]


def _write_svhn(folder, images, labels, name):
    # SVHN's layout: X [32, 32, 3, N] uint8, y [N, 1] with 10 standing for the digit 0.
    scipy.io.savemat(
        folder / name, {"X": np.transpose(images, (1, 2, 3, 0)), "y": np.where(labels == 0, 10, labels)[:, None]}
    )


@pytest.fixture(scope="module")
def svhn_dir(colour_images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("svhn")
    x_train, y_train, x_test, y_test = colour_images
    _write_svhn(folder, x_train, y_train, "train_32x32.mat")
    _write_svhn(folder, x_test, y_test, "test_32x32.mat")
    return folder


def _write_cifar_batch(path, images, labels):
    # CIFAR-10's python batches: b"data" [N, 3072] uint8, row-major red, green and blue planes; b"labels" a list.
    data = np.transpose(images, (0, 3, 1, 2)).reshape(len(images), 3072)
    with open(path, "wb") as f:
        pickle.dump(
            {b"batch_label": b"training batch", b"data": data, b"labels": [int(v) for v in labels]}, f, protocol=2
        )


@pytest.fixture(scope="module")
def cifar_dir(colour_images, tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    x_train, y_train, x_test, y_test = colour_images
    for i, part in enumerate(np.array_split(np.arange(len(x_train)), 5), start=1):
        _write_cifar_batch(folder / f"data_batch_{i}", x_train[part], y_train[part])
    _write_cifar_batch(folder / "test_batch", x_test, y_test)
    return root


def test_svhn_reader_returns_each_image_and_label_exactly(svhn_dir, colour_images):
    splits = load_splits("svhn", str(svhn_dir))
    x_train, y_train, x_test, y_test = colour_images
    np.testing.assert_array_equal(splits.x_train, x_train)  # orientation and channel order
    np.testing.assert_array_equal(splits.x_eval, x_test)
    np.testing.assert_array_equal(splits.y_train, y_train)  # the file's 10 comes back as digit 0
    assert 0 in splits.y_train and splits.y_train.max() <= 9


def test_cifar_reader_returns_each_image_and_label_exactly(cifar_dir, colour_images):
    for folder in (cifar_dir, cifar_dir / "cifar-10-batches-py"):  # the folder or its parent
        splits = load_splits("cifar10", str(folder))
        x_train, y_train, x_test, y_test = colour_images
        np.testing.assert_array_equal(splits.x_train, x_train)
        np.testing.assert_array_equal(splits.y_train, y_train)
        np.testing.assert_array_equal(splits.x_eval, x_test)
        np.testing.assert_array_equal(splits.y_eval, y_test)


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_calls_anything_else_is_refused_with_one_line(cifar_dir, tmp_path):
    hostile = tmp_path / "cifar-10-batches-py"
    hostile.mkdir()
    for name in os.listdir(cifar_dir / "cifar-10-batches-py"):
        (hostile / name).write_bytes((cifar_dir / "cifar-10-batches-py" / name).read_bytes())
    with open(hostile / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Hostile(), b"labels": [0]}, f, protocol=2)
    result = run_script(
        ["train.py", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs")]
    )
    assert_one_line_error(result, "refusing to unpickle", "system", "data_batch_3")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cnn_preset_trains_exports_and_evaluates_on_real_format_files(cifar_dir, tmp_path):
    # SVHN shares the preset and its network; its reader is checked image by image above (a whole SVHN run
    # here cost 52 s of CI for no other code).
    dataset, folder = "cifar10", cifar_dir
    train = run_script(
        [
            "train.py",
            "--dataset",
            dataset,
            "--data-dir",
            str(folder),
            "--steps",
            "4",
            "--batch-size",
            "8",
            "--out",
            str(tmp_path),
            "--name",
            "run",
            "--quiet",
        ]
    )
    assert train.returncode == 0, train.stderr[-3000:]
    for name in ("encoder/saved_model.pb", "reconstructions.png", "codebook.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    from softvq_tf.training.export import load_encoder

    z = load_encoder(str(tmp_path / "run" / "encoder"))(load_splits(dataset, str(folder)).x_eval[:5])
    assert z.shape == (5, 256) and np.all(np.isfinite(z))
    evaluate = run_script(
        [
            "evaluate.py",
            "--runs",
            str(tmp_path / "run"),
            "--kmeans-inits",
            "2",
            "--probe-epochs",
            "1",
            "--output",
            str(tmp_path / "table"),
        ]
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "Soft VQ-VAE" in (tmp_path / "table.md").read_text()


@pytest.mark.slow
def test_tensorflow_datasets_path_trains_exports_and_scores_without_network(tmp_path, monkeypatch):
    """``--dataset mnist`` without ``--data-dir`` goes through TensorFlow Datasets; its test mock serves the
    data here, and everything from the builder on is the real code."""
    import tensorflow_datasets as tfds

    from softvq_tf.experiments import plan
    from softvq_tf.training import data
    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.export import load_encoder
    from softvq_tf.training.fit import train

    monkeypatch.setattr(data, "_online", lambda *a, **k: True)  # the mock answers instead of the download host
    with tfds.testing.mock_data(num_examples=300):
        splits = data.load_splits("mnist")
        direct = list(tfds.as_numpy(tfds.load("mnist", split="train", as_supervised=True)))
        np.testing.assert_array_equal(splits.x_train, np.stack([x for x, _ in direct]))  # as TFDS gives them
        np.testing.assert_array_equal(splits.y_train, np.array([y for _, y in direct]))
        assert splits.x_train.dtype == np.uint8 and splits.x_train.shape[1:] == (28, 28, 1)
        assert splits.y_train.dtype == np.int64 and set(np.unique(splits.y_train)) <= set(range(10))
        config = resolve_config("mnist", "soft_vq", steps=20, epoch_steps=10, out=str(tmp_path))
        result = train(config, verbose=0, log=lambda *a: None)
        rows = plan.score_runs(
            [result.run_dir], str(tmp_path / "scores"), kmeans_inits=2, probe_epochs=1, log=lambda *a: None
        )
    assert [r["model"] for r in rows] == ["raw", "soft_vq"]
    assert all(0 < r["acc"] <= 100 and 0 <= r["nmi"] <= 1 for r in rows)
    z = load_encoder(os.path.join(result.run_dir, "encoder"))(splits.x_eval[:5])
    assert z.shape == (5, 64) and np.all(np.isfinite(z))


def test_training_batches_are_the_seeded_passes_made_inline_and_resume_mid_stream():
    import numpy as np

    from softvq_tf.training.config import resolve_config
    from softvq_tf.training.fit import make_dataset

    config = resolve_config("digits", "ae", batch_size=4)
    images = np.arange(10 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2, 1)
    ds = make_dataset(images, config, seed=3)
    batches = [b.numpy() for b in ds.take(6)]  # 24 samples: two whole passes of 10 and part of a third
    firsts = np.concatenate(batches)[:, 0, 0, 0] * config.pixel_max / 4  # each image's first pixel is 4 * index
    assert sorted(np.round(firsts[:10]).astype(int)) == list(range(10))  # a pass shows every image once
    assert sorted(np.round(firsts[10:20]).astype(int)) == list(range(10))
    resumed = [b.numpy() for b in make_dataset(images, config, seed=3, start_step=3).take(3)]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(batches[3:]))
    # Inline: no stage hands the batch from one thread to another (see make_dataset's docstring).
    ops = {node.op for node in tf_graph(ds).node}
    assert not ops & {"PrefetchDataset", "ParallelMapDataset", "ParallelMapDatasetV2"}, ops
    assert ds.options().autotune.enabled is False


def tf_graph(ds):
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(ds._as_serialized_graph().numpy())
    return graph
