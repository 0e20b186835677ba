"""Tables of scored runs: the paper-style summary, every run, and each model's difference to the soft VQ-VAE.

Rows come from ``scoring`` (one per run, plus the raw data). ``summarize``
groups the rows of one identity (they differ only by seed). ``differences``
gives each model's mean difference to the soft VQ-VAE with a 95% Welch
interval over seeds: a model is better or worse only where its interval
excludes 0.
"""

import collections
import shlex
import sys

import numpy as np

from softvq_tf.layers import registry

RAW = "raw"  # the row of the probes on raw pixels
# Model names in the tables' order: the raw data, then every bottleneck as the registry lists them.
MODEL_NAMES = {RAW: "Raw data", **{entry.name: entry.display_name for entry in registry.ENTRIES}}
# The paper's Tables 1 and 2: (clustering ACC %, NMI, classification %); None where not reported.
PAPER_RAW = {"mnist": (55.17, 0.5008, 92.44)}


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
    "effective_codewords",
    "hard_token_distance",
)
# Wall-clock times: summarised by their median over seeds, since one run paused (SIGSTOP) or trained on a
# busy machine pulls a mean by minutes.
MEDIAN_METRICS = ("train_seconds",)
# Training times are compared on one CPU: a row's time is the median of its runs on the path most of the
# table's runs took (CPUs of another instruction set train at other speeds).
TIMED_METRIC = "train_seconds"
# The metrics compared with the soft VQ-VAE, with their labels and digits.
COMPARED = (
    ("acc", "ACC (%)", 2),
    ("acc_near_best", "near-best ACC (%)", 2),
    ("nmi", "NMI", 4),
    ("cls", "cls (%)", 2),
    ("cls_logreg", "logreg (%)", 2),  # the converged probe beside the paper's: a cls gap may be the probe's
)


# How each logistic-regression value was made: rows scored since 0.4.0 record whether L-BFGS met its
# tolerance (``probes_converged``); earlier ones capped it at 1,000 iterations and recorded nothing.
LOGREG_UNRECORDED, LOGREG_UNCONVERGED = "†", "‡"
LOGREG_NOTE = (
    "Logistic regression: † scored before convergence was recorded (0.4.0 and earlier: scikit-learn's L-BFGS "
    "capped at 1,000 iterations, which a flattened grid of codes reached unconverged); ‡ did not converge in "
    "5,000 iterations. Unmarked values converged.\n\n"
)


def logreg_mark(rows):
    """The marks of the logistic-regression values of ``rows``: † for any scored before convergence was recorded,
    ‡ for any that did not converge; "" when every one converged."""
    made = [r for r in rows if r.get("cls_logreg") is not None]
    unrecorded = any("logreg" not in (r.get("probes_converged") or {}) for r in made)
    unconverged = any((r.get("probes_converged") or {}).get("logreg") is False for r in made)
    return (LOGREG_UNRECORDED if unrecorded else "") + (LOGREG_UNCONVERGED if unconverged else "")


def logreg_note(marks):
    """``LOGREG_NOTE`` under a table whose cells carry any of ``marks``, else ""."""
    return LOGREG_NOTE if any(m for m in marks) else ""


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
    sets = [set(filter(None, (r.get("variant") or "").split(", "))) for r in rows if r["model"] != RAW]
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
        entry["cls_logreg_mark"] = logreg_mark(members)
        entry["paper"] = _paper_row(dataset, first["model"]) if not first.get("variant") else None
        table.append(entry)
    return sorted(table, key=lambda e: (e["dataset"], order.index(e["model"]), e.get("variant") or ""))


def _most_common_path(rows):
    """The execution path (``plan.path_label``) most trained rows took; None where no row says."""
    paths = collections.Counter(r.get("path") for r in rows if r.get("model") != RAW and r.get("path"))
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
    from scipy import stats  # noqa: PLC0415 (the train extra's SciPy: softvq-claims says so in one line without it)

    result = stats.ttest_ind(values, reference, equal_var=False)
    interval = result.confidence_interval(confidence)
    diff = float(np.mean(values) - np.mean(reference))
    if not np.isfinite(interval.low):  # both samples constant: the difference is exact
        return diff, diff, diff
    return diff, float(interval.low), float(interval.high)


def reference_entry(table, common="", reference=None):
    """The entry the others are compared with: the one whose identity key is ``reference``, else the soft VQ-VAE
    with no variant beyond ``common``."""
    if reference is not None:
        return next((e for e in table if e["identity_key"] == reference), None)
    candidates = [e for e in table if e["model"] == registry.PROPOSED]
    plain = [e for e in candidates if display_name(e, common) == MODEL_NAMES[registry.PROPOSED]]
    return (plain or candidates or [None])[0]


def differences(table, common="", reference=None):
    """Per entry (not raw, not the reference): ``{metric: (diff, low, high) or None}`` against ``reference_entry``."""
    reference = reference_entry(table, common, reference)
    if reference is None:
        return {}
    out = {}
    for e in table:
        if e["model"] == RAW or e is reference:
            continue
        out[e["identity_key"]] = {
            metric: welch_interval(e[metric + "_values"], reference[metric + "_values"]) for metric, _, _ in COMPARED
        }
    return out


def reference_label(entry, common="", reference=None):
    """How a difference table names its reference: "soft VQ-VAE" for the default, else the chosen row's name."""
    return "soft VQ-VAE" if reference is None else display_name(entry, common)


def _paper_row(dataset, model):
    scores = PAPER_RAW if model == RAW else registry.get(model).paper_scores
    return dict(zip(("acc", "nmi", "cls"), scores[dataset])) if dataset in scores else None


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
            f"{_mean_std(e, 'cls', 2)} | {_mean_std(e, 'cls_logreg', 2)}{e.get('cls_logreg_mark', '')} | "
            f"{_mean_std(e, 'knn', 2)} | {_mean_std(e, 'reconstruction_nmse', 3)} | {_mean_std(e, 'perplexity', 1)} | "
            f"{_mean_std(e, 'codewords_in_use', 1)} | {paper} | {_time_cell(e, table_path)} |"
        )
    return "\n".join(lines) + "\n"


def differences_markdown(table, common="", reference=None):
    """Each model minus the reference (the soft VQ-VAE unless ``reference`` names an identity key), mean over seeds
    with its 95% Welch interval; ``*`` where it excludes 0."""
    diffs = differences(table, common, reference)
    reference, key = reference_entry(table, common, reference), reference
    if not any(d is not None for entry in diffs.values() for d in entry.values()):
        return ""  # one seed each: no interval to give
    lines = [
        f"Difference to {display_name(reference, common)} (model minus {reference_label(reference, common, key)}; mean "
        "over seeds, 95% Welch interval; * where the interval excludes 0):",
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
            if metric == "cls_logreg":  # how the two sides' values were made
                mark += "".join(sorted(set(e.get("cls_logreg_mark", "") + reference.get("cls_logreg_mark", ""))))
            cells.append(f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]{mark}")
        lines.append(f"| {display_name(e, common)} | {e['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
