"""A table's files: ``stem.md`` (summary, differences, the grid of codes, every run), ``stem.csv``, ``stem.json``."""

import csv
import io
import json

from softvq_tf.experiments.grid_tables import grid_differences_markdown, grid_markdown
from softvq_tf.experiments.tables import (
    RAW,
    SUMMARY_METRICS,
    _fmt,
    common_variant,
    differences_markdown,
    display_name,
    logreg_mark,
    logreg_note,
    timing_note,
    to_markdown,
)
from softvq_tf.training import rundir


def runs_markdown(rows, common=""):
    """One line per run (every seed), for the spread behind each mean."""
    lines = [
        "| model | seed | clustering ACC (%) | near-best ACC (%) [range] | NMI | classification (%) "
        "| logistic regression (%) | 10-NN (%) | codebook perplexity | codewords in use "
        "| reconstruction (normalised MSE) | training time (s) | run | path |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["model"] == RAW:
            continue
        near = "-"
        if r.get("acc_near_best") is not None:
            near = (
                f"{r['acc_near_best']:.2f} [{r['acc_near_best_min']:.1f}-{r['acc_near_best_max']:.1f}, "
                f"{r['near_best_restarts']} restarts]"
            )
        lines.append(
            f"| {display_name(r, common)} | {r['seed']} | {r['acc']:.2f} | {near} | {r['nmi']:.4f} | {r['cls']:.2f} | "
            f"{_fmt(r.get('cls_logreg'), None, 2)}{logreg_mark([r])} | {_fmt(r.get('knn'), None, 2)} | "
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


def write_tables(table, rows, stem, header="", reference=None):
    """Write ``stem.md`` (summary, differences to soft VQ or to the row whose identity key is ``reference``, every
    run), ``stem.csv`` and ``stem.json``, atomically."""
    common = common_variant(rows)
    settings = f"Settings of every run beyond the data set's preset: {common}.\n\n" if common else ""
    diffs = differences_markdown(table, common, reference)
    grid = ""
    if any(e.get("token_perplexity") is not None for e in table):
        grid_diffs = grid_differences_markdown(table, common, reference)
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
        + logreg_note(e.get("cls_logreg_mark") for e in table)
        + diffs
        + "\nEvery run:\n\n"
        + runs_markdown(rows, common)
        + ("\n" + logreg_note(logreg_mark([r]) for r in rows)).rstrip("\n")
        + "\n",
    )
    rundir.write_atomic(stem + ".csv", to_csv(table))
    slim_rows = [{k: v for k, v in r.items() if k != "kmeans_restarts"} for r in rows]
    rundir.write_atomic(stem + ".json", json.dumps({"table": table, "runs": slim_rows}, indent=2, default=float) + "\n")
