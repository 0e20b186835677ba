"""The paper's downstream probes of a latent representation (Representation Learning Tasks).

* k-means on the test latents (10 clusters, many random restarts, lowest inertia kept);
* clustering accuracy: the best one-to-one cluster-to-label map (Hungarian algorithm);
* NMI = 2 I(y, y_hat) / (H(y) + H(y_hat));
* a single Dense softmax layer trained on train latents, accuracy on test latents;
* a t-SNE scatter of the test latents.
"""

import dataclasses
import math
import warnings

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from softvq_tf.training import rundir

# Restarts within 0.5% of the lowest k-means inertia count as near-ties of the best (see near_best_mean).
NEAR_BEST_MARGIN = 0.005


@dataclasses.dataclass
class KMeansRestarts:
    """Every k-means restart of one clustering: ``inertias [R]`` and ``labels [R, N]``, in restart order."""

    inertias: np.ndarray
    labels: np.ndarray
    # Whether every restart's Lloyd iterations met scikit-learn's tolerance before its max_iter.
    converged: bool = True

    @property
    def best(self):
        """Index of the restart with the lowest inertia: the paper's statistic keeps this one."""
        return int(np.argmin(self.inertias))

    def near_best(self, margin=NEAR_BEST_MARGIN):
        """Indices of the restarts whose inertia is within ``margin`` (relative) of the lowest."""
        return np.flatnonzero(self.inertias <= self.inertias.min() * (1 + margin))


def kmeans_restarts(latents, n_clusters=10, n_init=100, seed=0, progress=None):
    """Cluster ``latents [N, d]`` ``n_init`` times, one k-means++ seeding each; keep every restart.

    Each restart is scikit-learn's ``KMeans(n_init=1)`` with its own seed drawn
    from ``seed``, so the first ``r`` restarts of a longer run are the same
    restarts, and per-restart scores can be computed (``near_best_mean``).
    """
    rng = np.random.default_rng(seed)
    seeds = rng.integers(2**31, size=n_init)
    inertias, labels = np.empty(n_init), np.empty((n_init, len(latents)), np.int32)
    converged = True
    for i, restart_seed in enumerate(seeds):
        km = KMeans(n_clusters, n_init=1, random_state=int(restart_seed))
        with warnings.catch_warnings(record=True) as caught:  # recorded in `converged`, not printed
            warnings.simplefilter("always", ConvergenceWarning)
            km.fit(latents)
        converged = converged and km.n_iter_ < km.max_iter and not _convergence_warnings(caught)
        inertias[i], labels[i] = km.inertia_, km.labels_
        if progress and ((i + 1) % 10 == 0 or i + 1 == n_init):
            progress(i + 1, n_init)
    return KMeansRestarts(inertias, labels, converged)


def _convergence_warnings(caught):
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def kmeans_labels(latents, n_clusters=10, n_init=100, seed=0, progress=None):
    """The lowest-inertia restart of ``kmeans_restarts``: ``(labels [N], inertia)``."""
    restarts = kmeans_restarts(latents, n_clusters, n_init, seed, progress)
    return restarts.labels[restarts.best], float(restarts.inertias[restarts.best])


def near_best_mean(inertias, values, margin=NEAR_BEST_MARGIN):
    """Mean of ``values`` over the restarts within ``margin`` of the lowest inertia.

    The paper keeps the single lowest-inertia restart. When two partitions
    that score several points apart have inertias within a fraction of a
    percent, which one wins is a coin flip between near-ties, not a property of
    the latent space. Averaging over the near-best restarts weighs each such
    partition by how often k-means finds it, so the statistic moves smoothly
    instead of flipping.
    """
    inertias, values = np.asarray(inertias, float), np.asarray(values, float)
    return float(values[inertias <= inertias.min() * (1 + margin)].mean())


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


def linear_probe_accuracy(
    train_x,
    train_y,
    test_x,
    test_y,
    epochs=30,
    batch_size=256,
    lr=1e-3,
    seed=0,
    verbose=0,
    min_steps=3000,
    steps_per_execution=None,
):
    """Train one Dense softmax layer on standardised train latents; accuracy on the test latents.

    Trains for ``epochs`` but at least ``min_steps`` updates, so small data sets converge too.
    By default every update runs inside one graph execution (``steps_per_execution`` = all of
    them): the same updates on the same batches, bit for bit, without a Python round trip per step.
    """
    keras.utils.set_random_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    steps = max(epochs * math.ceil(len(train_x) / batch_size), min_steps)
    probe = keras.Sequential([keras.Input((train_x.shape[1],)), keras.layers.Dense(n_classes, activation="softmax")])
    probe.compile(
        keras.optimizers.Adam(lr),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution or steps,
    )
    # The batches of ``from_tensor_slices((x, y)).shuffle(n, seed).repeat().batch(b)``, bit for bit (the shuffle's
    # order depends on its seed and sizes, not on the elements), gathered by index: the latents are copied once,
    # not through a shuffle buffer every epoch (15 s -> 10 s on a 60,000 x 3,136 grid; tests/test_probes.py).
    standardised = train_x - mean  # one copy of the latents, divided in place: ((x - mean) / std)'s bits
    standardised /= std
    x = tf.Variable(standardised.astype("float32", copy=False), trainable=False)
    del standardised
    y = tf.constant(train_y)
    order = tf.data.Dataset.range(len(train_x)).shuffle(len(train_x), seed=seed).repeat().batch(batch_size)
    data = order.map(lambda i: (tf.gather(x, i), tf.gather(y, i))).prefetch(2)
    probe.fit(data, epochs=1, steps_per_epoch=steps, verbose=verbose, shuffle=False)
    predictions = probe.predict((test_x - mean) / std, batch_size=4096, verbose=0).argmax(1)
    return float((predictions == test_y).mean())


@dataclasses.dataclass(frozen=True)
class LogisticRegressionResult:
    """A logistic regression probe: test ``accuracy``, whether L-BFGS ``converged`` to its tolerance, and after
    how many ``iterations``."""

    accuracy: float
    converged: bool
    iterations: int


def logistic_regression(train_x, train_y, test_x, test_y, max_iter=5000):
    """A multinomial logistic regression (L-BFGS to its tolerance, scikit-learn's default L2 penalty) on
    standardised latents; returns a ``LogisticRegressionResult``.

    The same model class as ``linear_probe_accuracy`` but trained to
    convergence, so a gap between the two is the Keras probe's short training,
    not the representation. ``max_iter`` is a safety cap, not a budget: a flat
    code converges in well under it; a run that reaches it is recorded as
    unconverged (its ``ConvergenceWarning`` goes into the record, not the log).
    """
    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(train_x), train_y)
    iterations = int(np.max(model.n_iter_))
    converged = iterations < max_iter and not _convergence_warnings(caught)
    return LogisticRegressionResult(float(model.score(scaler.transform(test_x), test_y)), converged, iterations)


def knn_accuracy(train_x, train_y, test_x, test_y, k=10):
    """Accuracy of a ``k``-nearest-neighbour vote in the latent space as it is (Euclidean, no rescaling).

    A number for the neighbourhood structure a t-SNE map shows.
    """
    return float(KNeighborsClassifier(k).fit(train_x, train_y).score(test_x, test_y))


def save_tsne(latents, labels, path, title="", max_points=5000, seed=0):
    """2-D t-SNE of ``latents``, one colour per class, written as PNG."""
    plt = rundir.pyplot()
    idx = np.random.default_rng(seed).permutation(len(latents))[:max_points]
    xy = TSNE(2, random_state=seed, init="pca").fit_transform(latents[idx])
    fig, ax = plt.subplots(figsize=(6, 6))
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels[idx], cmap="tab10", s=3)
    ax.legend(*scatter.legend_elements(), loc="best", fontsize=6, markerscale=0.7)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    rundir.save_figure(fig, path, dpi=100)


def logistic_regression_accuracy(train_x, train_y, test_x, test_y, max_iter=5000):
    """Deprecated (0.4.0): use ``logistic_regression``, which also says whether it converged."""
    warnings.warn(
        "probes.logistic_regression_accuracy is deprecated and will be removed in 1.0; use "
        "probes.logistic_regression(...).accuracy",
        DeprecationWarning,
        stacklevel=2,
    )
    return logistic_regression(train_x, train_y, test_x, test_y, max_iter).accuracy
