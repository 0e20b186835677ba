"""The table of a grid of codes: test reconstruction from each decoder input, token use, and differences.

Soft VQ has two lines: decoded from its posterior mean (its decoder's usual
input) and from its hard tokens (the most probable codewords).
"""

from softvq_tf.experiments.tables import (
    _mean_std,
    _table_path,
    _time_cell,
    display_name,
    reference_entry,
    welch_interval,
)
from softvq_tf.layers import registry

# The second line of a model decoded from its hard tokens as well (soft VQ), beside its usual decoder input.
HARD_TOKENS = "most probable codeword (hard tokens)"
# What a soft VQ-VAE's decoder reads under each ``soft_decode`` setting (issue #45) other than the posterior mean.
SOFT_DECODER_INPUTS = {"most_probable": HARD_TOKENS, "sample": "a codeword drawn from the posterior"}


def decoder_input(entry):
    """What the entry's decoder reads: its bottleneck's usual input, or the soft VQ decode mode its variant sets."""
    settings = dict(part.split("=", 1) for part in (entry.get("variant") or "").split(", ") if "=" in part)
    return SOFT_DECODER_INPUTS.get(settings.get("soft_decode"), registry.get(entry["model"]).decoder_input)


def _grid_lines(table):
    """``(entry, decoder input, nmse metric, psnr metric)`` per line: soft VQ twice (usual input, hard tokens), once
    where its decoder reads the hard tokens themselves."""
    for e in table:
        if e.get("test_nmse") is None:
            continue
        reads = decoder_input(e)
        yield e, reads, "test_nmse", "test_psnr"
        if e.get("hard_test_nmse") is not None and reads != HARD_TOKENS:
            yield e, HARD_TOKENS, "hard_test_nmse", "hard_test_psnr"


def grid_markdown(table, common=""):
    """A grid of codes' table: test reconstruction from each decoder input, token use, probes, training time."""
    lines = [
        "| model | seeds | decoder input | test NMSE | test PSNR (dB) | token perplexity | tokens in use "
        "| bits per image | effective codewords | linear probe (%) | clustering ACC (%) | NMI "
        "| training time (s, median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table_path = _table_path(table)
    for e, decoder_input, nmse, psnr in _grid_lines(table):
        lines.append(
            f"| {display_name(e, common)} | {e['n']} | {decoder_input} | {_mean_std(e, nmse, 4)} | "
            f"{_mean_std(e, psnr, 2)} | {_mean_std(e, 'token_perplexity', 1)} | {_mean_std(e, 'tokens_in_use', 1)} | "
            f"{_mean_std(e, 'bits_per_image', 0)} | {_mean_std(e, 'effective_codewords', 1)} | "
            f"{_mean_std(e, 'cls', 2)} | {_mean_std(e, 'acc', 2)} | "
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


# Columns compared with a chosen tokenizer (``reference``); "nmse" and "psnr" are each line's own reconstruction.
TOKENIZER_COMPARED = (
    ("NMSE", "nmse", 4),
    ("PSNR (dB)", "psnr", 2),
    ("token perplexity", "token_perplexity", 1),
    ("tokens in use", "tokens_in_use", 1),
    ("bits per image", "bits_per_image", 0),
    ("linear probe (%)", "cls", 2),
    ("ACC (%)", "acc", 2),
    ("NMI", "nmi", 4),
)


def _interval_cell(values, reference_values, digits):
    d = welch_interval(values, reference_values)
    if d is None:
        return None
    mark = "*" if d[1] > 0 or d[2] < 0 else ""
    return f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]{mark}"


def tokenizer_differences_markdown(table, reference, common=""):
    """Each grid line (soft VQ's posterior mean and hard tokens apart) minus the chosen row decoded from its hard
    tokens, with 95% Welch intervals: how every rival compares with it as a tokenizer."""
    ref = reference_entry(table, common, reference)
    if ref is None or ref.get("test_nmse") is None:
        return ""
    hard = ref.get("hard_test_nmse") is not None  # else its usual decoder input is its token grid
    ref_metric = {"nmse": "hard_test_nmse" if hard else "test_nmse", "psnr": "hard_test_psnr" if hard else "test_psnr"}
    lines = [
        f"Difference to {display_name(ref, common)} decoded from its hard tokens (each line minus it; mean over "
        "seeds, 95% Welch interval; * where the interval excludes 0):",
        "",
        "| model | seeds | decoder input | " + " | ".join(label for label, _, _ in TOKENIZER_COMPARED) + " |",
        "|---|---|---|" + "---|" * len(TOKENIZER_COMPARED),
    ]
    intervals = 0
    for e, reads, nmse, psnr in _grid_lines(table):
        if e is ref:
            continue
        cells = []
        line_metric = {"nmse": nmse, "psnr": psnr}
        for _, metric, digits in TOKENIZER_COMPARED:
            mine, theirs = line_metric.get(metric, metric), ref_metric.get(metric, metric)
            cell = _interval_cell(e.get(mine + "_values", []), ref.get(theirs + "_values", []), digits)
            intervals += cell is not None
            cells.append(cell or "-")
        lines.append(f"| {display_name(e, common)} | {e['n']} | {reads} | " + " | ".join(cells) + " |")
    if not intervals:
        return ""  # one seed each: no interval to give
    return "\n".join(lines) + "\n"


def grid_differences_markdown(table, common="", reference=None):
    """Each grid model minus the soft VQ-VAE (its posterior mean, and its hard tokens), with 95% Welch intervals;
    with ``reference`` (an identity key), every line minus that row's hard tokens."""
    if reference is not None:
        return tokenizer_differences_markdown(table, reference, common)
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
            cell = _interval_cell(e.get(metric + "_values", []), reference.get(theirs + "_values", []), digits)
            intervals += cell is not None
            cells.append(cell or "-")
        lines.append(f"| {display_name(e, common)} | {e['n']} | " + " | ".join(cells) + " |")
    if not intervals:
        return ""  # one seed each: no interval to give
    return "\n".join(lines) + "\n"
