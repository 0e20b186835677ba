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


def _grid_lines(table):
    """``(entry, decoder input, nmse metric, psnr metric)`` per line: soft VQ twice (usual input, hard tokens)."""
    for e in table:
        if e.get("test_nmse") is None:
            continue
        yield e, registry.get(e["model"]).decoder_input, "test_nmse", "test_psnr"
        if e.get("hard_test_nmse") is not None:
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
