"""The bottleneck registry: one entry per bottleneck, the one place its name is written.

``make_bottleneck``, ``train.py --help``, the training configuration (its
defaults per data set and its refusal of settings that do not apply) and the
result tables all read an entry. A new bottleneck is a layer file and one
entry here.

Plain Python: an entry names its layer class by module, and the class loads
when ``make_bottleneck`` builds one, so the command line checks its flags
against the registry before Keras and TensorFlow load.
"""

import dataclasses
import importlib
from typing import Mapping, Optional

# What a decoder reads where it reads no tokens (the AE, the VAE family, information dropout).
CONTINUOUS_CODE = "continuous code (no tokens)"


@dataclasses.dataclass(frozen=True)
class BottleneckEntry:
    """Everything the package knows about one bottleneck.

    Args:
        name: its name on the command line and in run names (``--bottleneck NAME``).
        layer: the layer class ``make_bottleneck`` builds, as ``"module.Class"`` under ``softvq_tf.layers``.
        display_name: its name in tables and figures.
        settings: the run settings that apply to it, each mapped to the layer's constructor argument.
        in_paper: one of the six bottlenecks Wu & Flierl (2020) compare.
        defaults: settings' values on every data set.
        preset_defaults: settings whose value is a field of the data set's preset, ``{setting: preset field}``.
        network_defaults: settings' values on one network, ``{network: {setting: value}}``.
        scales_reconstruction: the reconstruction term is multiplied by the input size, so that the
            regulariser keeps the paper's weights (the VAE family, information dropout).
        decoder_input: what its decoder reads, in the grid tables.
        code_probed: the bottleneck's own code that the probes also score (FSQ's bounded code), or None.
        soft_tokens: its tokens (most probable codewords) are not what the decoder reads in training, so
            decoding from them is measured apart.
        paper_scores: the paper's Tables 1 and 2, ``{dataset: (clustering ACC %, NMI, classification %)}``.
    """

    name: str
    layer: str
    display_name: str
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    in_paper: bool = False
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    preset_defaults: Mapping[str, str] = dataclasses.field(default_factory=dict)
    network_defaults: Mapping[str, Mapping[str, object]] = dataclasses.field(default_factory=dict)
    scales_reconstruction: bool = False
    decoder_input: str = CONTINUOUS_CODE
    code_probed: Optional[str] = None
    soft_tokens: bool = False
    paper_scores: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

    def layer_class(self):
        """The layer class (imports its module, and so Keras)."""
        module, _, cls = self.layer.rpartition(".")
        return getattr(importlib.import_module(f"softvq_tf.layers.{module}"), cls)


_CODEBOOK = {"num_codewords": "num_codewords"}
_VQ_LOSS = {"commitment": "commitment", "vq_weight": "vq_weight"}
_REMEDIES = {"kmeans_init": "kmeans_init", "dead_code_steps": "dead_code_steps"}
_VQ_LOSS_PRESET = {"commitment": "vq_commitment", "vq_weight": "vq_weight"}

# In the paper's tables' order, then the quantizers published after it.
ENTRIES = (
    BottleneckEntry(
        "ae",
        "base.IdentityBottleneck",
        "Baseline Autoencoder",
        in_paper=True,
        paper_scores={
            "mnist": (52.61, 0.5301, 91.91),
            "svhn": (11.96, None, 25.95),
            "cifar10": (21.73, None, 40.92),
        },
    ),
    BottleneckEntry(
        "vae",
        "gaussian.GaussianBottleneck",
        "VAE",
        settings={"kl_weight": "kl_weight"},
        in_paper=True,
        defaults={"kl_weight": 1.0},
        scales_reconstruction=True,
        paper_scores={
            "mnist": (56.44, 0.5600, 89.10),
            "svhn": (13.58, None, 26.42),
            "cifar10": (24.12, None, 38.83),
        },
    ),
    BottleneckEntry(
        "beta_vae",
        "gaussian.GaussianBottleneck",
        "beta-VAE",
        settings={"kl_weight": "kl_weight"},
        in_paper=True,
        preset_defaults={"kl_weight": "beta_vae_kl_weight"},
        scales_reconstruction=True,
        paper_scores={
            "mnist": (73.81, 0.5760, 91.10),
            "svhn": (14.54, None, 49.62),
            "cifar10": (22.80, None, 36.91),
        },
    ),
    BottleneckEntry(
        "info_dropout",
        "gaussian.InformationDropout",
        "Information dropout",
        in_paper=True,
        scales_reconstruction=True,
        paper_scores={
            "mnist": (58.52, 0.4979, 91.11),
            "svhn": (12.75, None, 24.46),
            "cifar10": (21.96, None, 39.89),
        },
    ),
    BottleneckEntry(
        "vq",
        "vector_quantizer.VectorQuantizer",
        "VQ-VAE",
        settings={
            **_CODEBOOK,
            **_VQ_LOSS,
            "ema_decay": "ema_decay",
            **_REMEDIES,
            "gradient_estimator": "gradient_estimator",
        },
        in_paper=True,
        preset_defaults={"num_codewords": "codewords_vq", **_VQ_LOSS_PRESET},
        decoder_input="nearest codeword",
        paper_scores={
            "mnist": (51.48, 0.3541, 81.62),
            "svhn": (12.96, None, 31.57),
            "cifar10": (20.30, None, 33.51),
        },
    ),
    BottleneckEntry(
        "soft_vq",
        "soft_vector_quantizer.SoftVectorQuantizer",
        "Soft VQ-VAE",
        settings={
            **_CODEBOOK,
            **_VQ_LOSS,
            "noise_std": "noise_std",
            "likelihood": "likelihood",
            **_REMEDIES,
            # Soft to hard (issue #45): left None, the layer's defaults, the paper's behaviour.
            "soft_decode": "decode",
            "hardening_steps": "hardening_steps",
            "entropy_weight": "entropy_weight",
            "usage_weight": "usage_weight",
        },
        in_paper=True,
        defaults={"noise_std": 0.0, "likelihood": "original"},
        # The paper stops the soft VQ-VAE early on SVHN and CIFAR-10.
        preset_defaults={"num_codewords": "codewords_soft_vq", "steps": "soft_vq_steps", **_VQ_LOSS_PRESET},
        decoder_input="posterior mean",
        soft_tokens=True,
        paper_scores={
            "mnist": (77.64, 0.7188, 93.54),
            "svhn": (17.68, None, 50.48),
            "cifar10": (23.83, None, 44.54),
        },
    ),
    BottleneckEntry(
        "fsq",
        "fsq.FiniteScalarQuantizer",
        "FSQ",
        settings={"fsq_levels": "levels", "fsq_project_out_bias": "project_out_bias"},
        # From a zero output bias FSQ's codes collapse to one.
        defaults={"fsq_levels": "8,4,4", "output_bias": "data_mean"},
        # conv_grid's codes all start at the zero level: from a zero bias no gradient flows.
        network_defaults={"conv_grid": {"fsq_project_out_bias": "uniform"}},
        decoder_input="rounded code",
        code_probed="the bounded FSQ code before rounding",
    ),
    BottleneckEntry(
        "sqvae",
        "sqvae.StochasticVectorQuantizer",
        "SQ-VAE",
        settings={**_CODEBOOK, "temperature_decay": "temperature_decay"},
        defaults={"temperature_decay": 1e-5},
        preset_defaults={"num_codewords": "codewords_soft_vq"},
        decoder_input="nearest codeword (its inference)",
    ),
)
REGISTRY = {entry.name: entry for entry in ENTRIES}
# Every bottleneck's name, and the paper's six, in the tables' order.
NAMES = tuple(REGISTRY)
PAPER_NAMES = tuple(entry.name for entry in ENTRIES if entry.in_paper)
# The paper's proposal (the default bottleneck, and the row every table compares with) and its baseline.
PROPOSED = "soft_vq"
BASELINE = "ae"


def get(name):
    """The entry of bottleneck ``name``; a ``ValueError`` naming the choices for an unknown one."""
    if name not in REGISTRY:
        raise ValueError(f"unknown bottleneck {name!r}; choose one of {', '.join(NAMES)}")
    return REGISTRY[name]


def applies_to(setting):
    """The bottlenecks a run setting applies to, in registry order (empty: it is not a layer setting)."""
    return tuple(entry.name for entry in ENTRIES if setting in entry.settings)


# Every run setting some bottleneck takes: make_bottleneck's keyword arguments.
LAYER_SETTINGS = tuple(dict.fromkeys(setting for entry in ENTRIES for setting in entry.settings))


def applicable(name, settings):
    """The part of ``settings`` (run settings by name) that applies to bottleneck ``name``; the rest dropped.

    Settings no bottleneck takes (``steps``, ``lr``, ...) are kept: they apply to every run.
    """
    entry = get(name)
    return {k: v for k, v in settings.items() if k not in LAYER_SETTINGS or k in entry.settings}


def make_bottleneck(bottleneck, /, *, name=None, seed=None, **settings):
    """Build the bottleneck layer called ``bottleneck``; settings left None keep the layer's default.

    Args:
        bottleneck: one of ``NAMES`` (``"ae"``, ``"vq"``, ``"soft_vq"``, ...).
        name: the Keras layer's name (None: Keras names it after its class), so that several can share a model.
        seed: the layer's seed.
        **settings: run settings by their ``train.py`` names (``num_codewords``, ``kl_weight``,
            ``commitment``, ``vq_weight``, ``noise_std``, ``likelihood``, ``ema_decay``, ``kmeans_init``,
            ``dead_code_steps``, ``gradient_estimator``, ``fsq_levels`` (a sequence or text such as
            ``"8,4,4"``), ``fsq_project_out_bias``, ``temperature_decay``); each one given must apply to
            ``bottleneck`` (``applicable`` keeps those that do).

    Returns:
        The layer.

    Raises:
        ValueError: an unknown bottleneck or setting, or a setting (not None) that does not apply to it.

    Example:
        >>> layer = make_bottleneck("vq", num_codewords=8, ema_decay=0.99, name="vq_top")
        >>> layer.name, layer.num_codewords
        ('vq_top', 8)
    """
    entry = get(bottleneck)
    given = {key: value for key, value in settings.items() if value is not None}
    unknown = sorted(set(given) - set(LAYER_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown bottleneck setting(s) {', '.join(unknown)}; the settings are {', '.join(LAYER_SETTINGS)}"
        )
    foreign = sorted(set(given) - set(entry.settings))
    if foreign:
        takes = ", ".join(entry.settings) or "none"
        raise ValueError(f"{', '.join(foreign)} does not apply to {bottleneck} (its settings: {takes}); leave it out")
    arguments = {entry.settings[key]: value for key, value in given.items()}
    return entry.layer_class()(**arguments, seed=seed, name=name)
