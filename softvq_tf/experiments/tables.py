"""Tables of scored runs: the paper-style summary, every run, and each model's difference to the soft VQ-VAE.

Rows come from ``scoring`` (one per run, plus the raw data). ``summarize``
groups the rows of one identity (they differ only by seed). ``differences``
gives each model's mean difference to the soft VQ-VAE with a 95% Welch
interval over seeds: a model is better or worse only where its interval
excludes 0.
"""

import collections
import csv
import io
import json
import shlex
import sys

import numpy as np
from scipy import stats

from softvq_tf.training import rundir

MODEL_NAMES = {
    "raw": "Raw data",
    "ae": "Baseline Autoencoder",
    "vae": "VAE",
    "beta_vae": "beta-VAE",
    "info_dropout": "Information dropout",
    "vq": "VQ-VAE",
    "soft_vq": "Soft VQ-VAE",
    # Quantizers published after the paper.
    "fsq": "FSQ",
    "sqvae": "SQ-VAE",
}
# Paper, Tables 1 and 2: (clustering ACC %, NMI, classification %); None where not reported.
PAPER = {
    "mnist": {
        "raw": (55.17, 0.5008, 92.44),
        "ae": (52.61, 0.5301, 91.91),
        "vae": (56.44, 0.5600, 89.10),
        "beta_vae": (73.81, 0.5760, 91.10),
        "info_dropout": (58.52, 0.4979, 91.11),
        "vq": (51.48, 0.3541, 81.62),
        "soft_vq": (77.64, 0.7188, 93.54),
    },
    "svhn": {
        "ae": (11.96, None, 25.95),
        "vae": (13.58, None, 26.42),
        "beta_vae": (14.54, None, 49.62),
        "info_dropout": (12.75, None, 24.46),
        "vq": (12.96, None, 31.57),
        "soft_vq": (17.68, None, 50.48),
    },
    "cifar10": {
        "ae": (21.73, None, 40.92),
        "vae": (24.12, None, 38.83),
        "beta_vae": (22.80, None, 36.91),
        "info_dropout": (21.96, None, 39.89),
        "vq": (20.30, None, 33.51),
        "soft_vq": (23.83, None, 44.54),
    },
}


SUMMARY_METRICS = (
    "acc",
    "acc_near_best",
    "nmi",
    "nmi_near_best",
    "cls",
    "cls_logreg",
    "knn",
    "seconds",
    "train_seconds",
    "perplexity",
    "codewords_in_use",
    "reconstruction_nmse",
    "dead_code_restarts",
)
# A grid of codes' reconstruction and token use (``tokens.token_scores``); kept only where a row has them.
GRID_METRICS = (
    "test_nmse",
    "test_psnr",
    "hard_test_nmse",
    "hard_test_psnr",
    "token_perplexity",
    "tokens_in_use",
    "bits_per_image",
)
# Wall-clock times: summarised by their median over seeds, since one run paused (SIGSTOP) or trained on a
# busy machine pulls a mean by minutes.
MEDIAN_METRICS = ("train_seconds",)
# Training times are compared on one CPU: a row's time is the median of its runs on the path most of the
# table's runs took (an AVX2 CPU trained the grid models 5-8 times slower than an AVX-512 one).
TIMED_METRIC = "train_seconds"
# The metrics compared with the soft VQ-VAE, with their labels and digits.
COMPARED = (
    ("acc", "ACC (%)", 2),
    ("acc_near_best", "near-best ACC (%)", 2),
    ("nmi", "NMI", 4),
    ("cls", "cls (%)", 2),
    ("cls_logreg", "logreg (%)", 2),  # the converged probe beside the paper's: a cls gap may be the probe's
)


def command_line(program, argv=None):
    """``"Command: `PROGRAM ARGS`"``: the line every results file starts with, so it can be made again."""
    args = argv if argv is not None else sys.argv[1:]
    return f"Command: `{' '.join([program, *map(shlex.quote, args)])}`"


def display_name(entry, common=""):
    """Model name for tables and figures, with its variant if any (less the settings ``common`` to every row)."""
    shared = set(filter(None, common.split(", ")))
    variant = ", ".join(v for v in (entry.get("variant") or "").split(", ") if v and v not in shared)
    return MODEL_NAMES[entry["model"]] + (f" ({variant})" if variant else "")


def common_variant(rows):
    """The variant settings every trained row shares (e.g. ``batch_size=64, steps=20000``), said once in a header."""
    sets = [set(filter(None, (r.get("variant") or "").split(", "))) for r in rows if r["model"] != "raw"]
    shared = set.intersection(*sets) if sets else set()
    return ", ".join(sorted(shared))


def _group_key(row, group_by):
    # Rows stored before the rename carry the identity key under "identity".
    return row.get(group_by, row.get("identity")) if group_by == "identity_key" else row[group_by]


def summarize(rows, group_by="identity_key"):
    """Group rows of one identity (they differ only by seed): mean (median for ``MEDIAN_METRICS``) and sample
    std of each metric, and the values.

    The paper's figure is attached only to rows trained with exactly the
    paper's settings (no variant): a row with another budget is not the
    paper's experiment.
    """
    groups = collections.OrderedDict()
    for row in rows:
        groups.setdefault((row["dataset"], _group_key(row, group_by)), []).append(row)
    timing_path = _most_common_path(rows)
    order = list(MODEL_NAMES)
    table = []
    for (dataset, key), members in groups.items():
        first = members[0]
        entry = {k: first.get(k) for k in ("dataset", "model", "variant", "K", "d")}
        entry.update(identity_key=key, n=len(members), seeds=[m.get("seed") for m in members])
        if group_by != "identity_key":
            entry[group_by] = first[group_by]
        grid = [m for m in GRID_METRICS if any(member.get(m) is not None for member in members)]
        timed = [m for m in members if m.get("path") == timing_path] or members
        entry.update(train_seconds_path=_most_common_path(timed), table_timing_path=timing_path)
        for metric in (*SUMMARY_METRICS, *grid):
            values = [m[metric] for m in (timed if metric == TIMED_METRIC else members) if m.get(metric) is not None]
            center = np.median if metric in MEDIAN_METRICS else np.mean
            entry[metric] = float(center(values)) if values else None
            entry[metric + "_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
            entry[metric + "_values"] = values
        entry["paper"] = _paper_row(dataset, first["model"]) if not first.get("variant") else None
        table.append(entry)
    return sorted(table, key=lambda e: (e["dataset"], order.index(e["model"]), e.get("variant") or ""))


def _most_common_path(rows):
    """The execution path (``plan.path_label``) most trained rows took; None where no row says."""
    paths = collections.Counter(r.get("path") for r in rows if r.get("model") != "raw" and r.get("path"))
    return paths.most_common(1)[0][0] if paths else None


def timing_note(table):
    """One line under a table: on which path its training times were measured."""
    path = _table_path(table)
    if path is None:
        return ""
    others = any(e.get("train_seconds_path") != path for e in table if e.get("train_seconds") is not None)
    return (
        f"Training time: the median of each row's runs on the path most of the table's runs took ({path}), so "
        "that rows compare on one CPU"
        + ("; a row with no run there gives its own path beside its time" if others else "")
        + ". Every run's own time is in the last table.\n\n"
    )


def _time_cell(e, table_path=None):
    """A row's training time; its path beside it where it differs from the table's."""
    cell = _fmt(e.get("train_seconds"), None, 0)
    path = e.get("train_seconds_path")
    return cell + (f" ({path})" if e.get("train_seconds") is not None and path and path != table_path else "")


def _table_path(table):
    """The path ``summarize`` timed the table's rows on (the most common over all its runs)."""
    return next((e["table_timing_path"] for e in table if e.get("table_timing_path")), None)


def welch_interval(values, reference, confidence=0.95):
    """``(mean(values) - mean(reference), low, high)``: Welch's t interval for the difference of means.

    Welch's, not Student's: the spread of a probe differs between models (the
    soft VQ-VAE's ACC can be bimodal over seeds, another model's tight). None
    when either side has fewer than 2 values.
    """
    if len(values) < 2 or len(reference) < 2:
        return None
    result = stats.ttest_ind(values, reference, equal_var=False)
    interval = result.confidence_interval(confidence)
    diff = float(np.mean(values) - np.mean(reference))
    if not np.isfinite(interval.low):  # both samples constant: the difference is exact
        return diff, diff, diff
    return diff, float(interval.low), float(interval.high)


def reference_entry(table, common=""):
    """The soft VQ-VAE entry the others are compared with: the one with no variant beyond ``common``."""
    candidates = [e for e in table if e["model"] == "soft_vq"]
    plain = [e for e in candidates if display_name(e, common) == MODEL_NAMES["soft_vq"]]
    return (plain or candidates or [None])[0]


def differences(table, common=""):
    """Per entry (not raw, not the reference): ``{metric: (diff, low, high) or None}`` against ``reference_entry``."""
    reference = reference_entry(table, common)
    if reference is None:
        return {}
    out = {}
    for e in table:
        if e["model"] == "raw" or e is reference:
            continue
        out[e["identity_key"]] = {
            metric: welch_interval(e[metric + "_values"], reference[metric + "_values"]) for metric, _, _ in COMPARED
        }
    return out


def _paper_row(dataset, model):
    if dataset not in PAPER or model not in PAPER[dataset]:
        return None
    return dict(zip(("acc", "nmi", "cls"), PAPER[dataset][model]))


def _fmt(value, std, digits):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _mean_std(e, metric, digits):
    return _fmt(e.get(metric), e.get(metric + "_std"), digits)


def to_markdown(table, common=""):
    """The paper-style table: mean ± sample std over seeds, the paper's figure where the settings are the paper's."""
    lines = [
        "| model | K | d | seeds | clustering ACC (%) | near-best ACC (%) | NMI | classification (%) "
        "| logistic regression (%) | 10-NN (%) | reconstruction (normalised MSE) | codebook perplexity "
        "| codewords in use | paper ACC (%) / NMI / cls (%) | training time (s, median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table_path = _table_path(table)
    for e in table:
        p = e["paper"]
        paper = " / ".join("-" if p[m] is None else f"{p[m]:g}" for m in ("acc", "nmi", "cls")) if p else "-"
        lines.append(
            f"| {display_name(e, common)} | {e['K'] or '-'} | {e['d']} | {e['n'] if e['model'] != 'raw' else '-'} | "
            f"{_mean_std(e, 'acc', 2)} | {_mean_std(e, 'acc_near_best', 2)} | {_mean_std(e, 'nmi', 4)} | "
            f"{_mean_std(e, 'cls', 2)} | {_mean_std(e, 'cls_logreg', 2)} | {_mean_std(e, 'knn', 2)} | "
            f"{_mean_std(e, 'reconstruction_nmse', 3)} | {_mean_std(e, 'perplexity', 1)} | "
            f"{_mean_std(e, 'codewords_in_use', 1)} | {paper} | {_time_cell(e, table_path)} |"
        )
    return "\n".join(lines) + "\n"


def differences_markdown(table, common=""):
    """Each model minus the soft VQ-VAE, mean over seeds with its 95% Welch interval; ``*`` where it excludes 0."""
    reference = reference_entry(table, common)
    diffs = differences(table, common)
    if not any(d is not None for entry in diffs.values() for d in entry.values()):
        return ""  # one seed each: no interval to give
    lines = [
        f"Difference to {display_name(reference, common)} (model minus soft VQ-VAE; mean over seeds, 95% Welch "
        "interval; * where the interval excludes 0):",
        "",
        "| model | seeds | " + " | ".join(label for _, label, _ in COMPARED) + " |",
        "|---|---|" + "---|" * len(COMPARED),
    ]
    for e in table:
        if e["identity_key"] not in diffs:
            continue
        cells = []
        for metric, _, digits in COMPARED:
            d = diffs[e["identity_key"]][metric]
            if d is None:
                cells.append("-")
                continue
            mark = "*" if d[1] > 0 or d[2] < 0 else ""
            cells.append(f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]{mark}")
        lines.append(f"| {display_name(e, common)} | {e['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# What the decoder reads in a grid model's row: the usual input, and for soft VQ also its hard tokens.
DECODER_INPUT = {
    "soft_vq": "posterior mean",
    "vq": "nearest codeword",
    "sqvae": "nearest codeword (its inference)",
    "fsq": "rounded code",
}
CONTINUOUS_CODE = "continuous code (no tokens)"  # the AE, the VAE family and information dropout
HARD_TOKENS = "most probable codeword (hard tokens)"


def _grid_lines(table):
    """``(entry, decoder input, nmse metric, psnr metric)`` per line: soft VQ twice (usual input, hard tokens)."""
    for e in table:
        if e.get("test_nmse") is None:
            continue
        yield e, DECODER_INPUT.get(e["model"], CONTINUOUS_CODE), "test_nmse", "test_psnr"
        if e.get("hard_test_nmse") is not None:
            yield e, HARD_TOKENS, "hard_test_nmse", "hard_test_psnr"


def grid_markdown(table, common=""):
    """A grid of codes' table: test reconstruction from each decoder input, token use, probes, training time."""
    lines = [
        "| model | seeds | decoder input | test NMSE | test PSNR (dB) | token perplexity | tokens in use "
        "| bits per image | linear probe (%) | clustering ACC (%) | NMI | training time (s, median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table_path = _table_path(table)
    for e, decoder_input, nmse, psnr in _grid_lines(table):
        lines.append(
            f"| {display_name(e, common)} | {e['n']} | {decoder_input} | {_mean_std(e, nmse, 4)} | "
            f"{_mean_std(e, psnr, 2)} | {_mean_std(e, 'token_perplexity', 1)} | {_mean_std(e, 'tokens_in_use', 1)} | "
            f"{_mean_std(e, 'bits_per_image', 0)} | {_mean_std(e, 'cls', 2)} | {_mean_std(e, 'acc', 2)} | "
            f"{_mean_std(e, 'nmi', 4)} | {_time_cell(e, table_path)} |"
        )
    return "\n".join(lines) + "\n"


# Grid columns compared with the soft VQ-VAE: (label, the model's metric, the soft VQ-VAE's metric, digits).
GRID_COMPARED = (
    ("NMSE vs posterior mean", "test_nmse", "test_nmse", 4),
    ("NMSE vs hard tokens", "test_nmse", "hard_test_nmse", 4),
    ("PSNR (dB) vs posterior mean", "test_psnr", "test_psnr", 2),
    ("PSNR (dB) vs hard tokens", "test_psnr", "hard_test_psnr", 2),
    ("token perplexity", "token_perplexity", "token_perplexity", 1),
    ("tokens in use", "tokens_in_use", "tokens_in_use", 1),
    ("linear probe (%)", "cls", "cls", 2),
    ("ACC (%)", "acc", "acc", 2),
    ("NMI", "nmi", "nmi", 4),
)


def grid_differences_markdown(table, common=""):
    """Each grid model minus the soft VQ-VAE (its posterior mean, and its hard tokens), with 95% Welch intervals."""
    reference = reference_entry(table, common)
    if reference is None or reference.get("hard_test_nmse") is None:
        return ""
    lines = [
        f"Difference to {display_name(reference, common)} (model minus soft VQ-VAE; mean over seeds, 95% Welch "
        "interval; * where the interval excludes 0; NMSE and PSNR against the soft VQ-VAE decoded from its "
        "posterior mean and from its hard tokens):",
        "",
        "| model | seeds | " + " | ".join(label for label, _, _, _ in GRID_COMPARED) + " |",
        "|---|---|" + "---|" * len(GRID_COMPARED),
    ]
    intervals = 0
    for e in table:
        if e is reference or e.get("test_nmse") is None:
            continue
        cells = []
        for _, metric, theirs, digits in GRID_COMPARED:
            d = welch_interval(e.get(metric + "_values", []), reference.get(theirs + "_values", []))
            if d is None:
                cells.append("-")
                continue
            intervals += 1
            mark = "*" if d[1] > 0 or d[2] < 0 else ""
            cells.append(f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]{mark}")
        lines.append(f"| {display_name(e, common)} | {e['n']} | " + " | ".join(cells) + " |")
    if not intervals:
        return ""  # one seed each: no interval to give
    return "\n".join(lines) + "\n"


def runs_markdown(rows, common=""):
    """One line per run (every seed), for the spread behind each mean."""
    lines = [
        "| model | seed | clustering ACC (%) | near-best ACC (%) [range] | NMI | classification (%) "
        "| logistic regression (%) | 10-NN (%) | codebook perplexity | codewords in use "
        "| reconstruction (normalised MSE) | training time (s) | run | path |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["model"] == "raw":
            continue
        near = "-"
        if r.get("acc_near_best") is not None:
            near = (
                f"{r['acc_near_best']:.2f} [{r['acc_near_best_min']:.1f}-{r['acc_near_best_max']:.1f}, "
                f"{r['near_best_restarts']} restarts]"
            )
        lines.append(
            f"| {display_name(r, common)} | {r['seed']} | {r['acc']:.2f} | {near} | {r['nmi']:.4f} | {r['cls']:.2f} | "
            f"{_fmt(r.get('cls_logreg'), None, 2)} | {_fmt(r.get('knn'), None, 2)} | "
            f"{_fmt(r.get('perplexity'), None, 1)} | {_fmt(r.get('codewords_in_use'), None, 0)} | "
            f"{_fmt(r.get('reconstruction_nmse'), None, 4)} | {_fmt(r.get('train_seconds'), None, 0)} | {r['run']} | "
            f"{r.get('path', '-')} |"
        )
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("dataset", "model", "variant", "K", "d", "n", *(m + s for m in SUMMARY_METRICS for s in ("", "_std")))


def to_csv(table):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*CSV_FIELDS, "paper_acc", "paper_nmi", "paper_cls"])
    writer.writeheader()
    for e in table:
        p = e["paper"] or {}
        paper = {"paper_acc": p.get("acc"), "paper_nmi": p.get("nmi"), "paper_cls": p.get("cls")}
        writer.writerow({**{f: e.get(f) for f in CSV_FIELDS}, **paper})
    return buffer.getvalue()


NEAR_BEST_NOTE = (
    "Clustering ACC and NMI are the paper's statistic: the k-means restart (of {inits}) with the lowest inertia. "
    "Near-best ACC averages the restarts within 0.5% of that inertia: on near-ties between partitions that score "
    "several points apart, the lowest inertia picks one by chance, and the average does not flip.\n\n"
)


def _kmeans_inits(rows):
    """The k-means restarts behind the rows' clustering scores, as text ("100", or "3-100" if they differ)."""
    counts = sorted({len(r["kmeans_restarts"]["acc"]) for r in rows if r.get("kmeans_restarts")})
    if not counts:
        return "100"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def write_tables(table, rows, stem, header=""):
    """Write ``stem.md`` (summary, differences to soft VQ, every run), ``stem.csv`` and ``stem.json``, atomically."""
    common = common_variant(rows)
    settings = f"Settings of every run beyond the data set's preset: {common}.\n\n" if common else ""
    diffs = differences_markdown(table, common)
    grid = ""
    if any(e.get("token_perplexity") is not None for e in table):
        grid_diffs = grid_differences_markdown(table, common)
        grid = (
            "## Grid of codes: reconstruction and tokens\n\n"
            "Test split; NMSE is the squared error over the training images' variance. Token use counts every "
            "position of every test image; bits per image = positions x log2(tokens in use).\n\n"
            + grid_markdown(table, common)
            + f"\n{timing_note(table)}"
            + grid_diffs
            + "\n## Probes\n\n"
        )
    rundir.write_atomic(
        stem + ".md",
        header
        + settings
        + grid
        + NEAR_BEST_NOTE.format(inits=_kmeans_inits(rows))
        + to_markdown(table, common)
        + f"\n{timing_note(table)}"
        + diffs
        + "\nEvery run:\n\n"
        + runs_markdown(rows, common),
    )
    rundir.write_atomic(stem + ".csv", to_csv(table))
    slim_rows = [{k: v for k, v in r.items() if k != "kmeans_restarts"} for r in rows]
    rundir.write_atomic(stem + ".json", json.dumps({"table": table, "runs": slim_rows}, indent=2, default=float) + "\n")
