"""The paper's downstream probes of a latent representation (Representation Learning Tasks).

* k-means on the test latents (10 clusters, many random restarts, lowest inertia kept);
* clustering accuracy: the best one-to-one cluster-to-label map (Hungarian algorithm);
* NMI = 2 I(y, y_hat) / (H(y) + H(y_hat));
* a single Dense softmax layer trained on train latents, accuracy on test latents;
* a t-SNE scatter of the test latents.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score


def kmeans_labels(latents, n_clusters=10, n_init=100, seed=0, progress=None):
    """Cluster ``latents [N, d]``; keep the restart with the lowest inertia.

    Runs scikit-learn's k-means (k-means++ seeding, Lloyd iterations) in chunks
    of restarts so that ``progress(done, total)`` can report them.
    """
    best, done = None, 0
    rng = np.random.default_rng(seed)
    chunk = max(1, min(10, n_init))
    while done < n_init:
        n = min(chunk, n_init - done)
        km = KMeans(n_clusters, n_init=n, random_state=int(rng.integers(2**31))).fit(latents)
        if best is None or km.inertia_ < best.inertia_:
            best = km
        done += n
        if progress:
            progress(done, n_init)
    return best.labels_, float(best.inertia_)


def clustering_accuracy(labels, clusters):
    """Accuracy under the best one-to-one map of clusters to labels (``linear_sum_assignment``)."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    label_ids, label_idx = np.unique(labels, return_inverse=True)
    cluster_ids, cluster_idx = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(label_ids)), np.int64)
    np.add.at(counts, (cluster_idx, label_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return counts[rows, cols].sum() / len(labels)


def nmi(labels, clusters):
    """Normalised mutual information with the arithmetic mean of the entropies (the paper's 2I/(H+H))."""
    return float(normalized_mutual_info_score(labels, clusters, average_method="arithmetic"))


def linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=30, batch_size=256, lr=1e-3, seed=0, verbose=0, min_steps=3000):
    """Train one Dense softmax layer on standardised train latents; accuracy on the test latents.

    Trains for ``epochs`` but at least ``min_steps`` updates, so small data sets converge too.
    """
    import math

    import keras

    keras.utils.set_random_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    probe = keras.Sequential([keras.Input((train_x.shape[1],)), keras.layers.Dense(n_classes, activation="softmax")])
    probe.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    import tensorflow as tf

    steps = max(epochs * math.ceil(len(train_x) / batch_size), min_steps)
    data = tf.data.Dataset.from_tensor_slices((((train_x - mean) / std).astype("float32"), train_y))
    data = data.shuffle(len(train_x), seed=seed).repeat().batch(batch_size).prefetch(2)
    probe.fit(data, epochs=1, steps_per_epoch=steps, verbose=verbose, shuffle=False)
    predictions = probe.predict((test_x - mean) / std, batch_size=4096, verbose=0).argmax(1)
    return float((predictions == test_y).mean())


def save_tsne(latents, labels, path, title="", max_points=5000, seed=0):
    """2-D t-SNE of ``latents``, one colour per class, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    idx = np.random.default_rng(seed).permutation(len(latents))[:max_points]
    xy = TSNE(2, random_state=seed, init="pca").fit_transform(latents[idx])
    fig, ax = plt.subplots(figsize=(6, 6))
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels[idx], cmap="tab10", s=3)
    ax.legend(*scatter.legend_elements(), loc="best", fontsize=6, markerscale=0.7)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    from softvq_tf.rundir import save_figure

    save_figure(fig, path, dpi=100)
