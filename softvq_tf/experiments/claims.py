"""The paper's claims about the six bottlenecks, checked one by one against our tables.

    softvq-claims results/fashion_mnist.json results/fashion_mnist_steps20000_batch64.json \\
        --output results/claims_fashion_mnist.md

Each table (a ``softvq-reproduce`` JSON) is one protocol. A claim holds only
where the 95% Welch interval over seeds says so; an interval that includes 0
shows nothing either way ("not shown"), and the number behind every verdict is
printed beside it, so the README quotes computed figures, not typed ones.
"""

import json
import os

from softvq_tf.experiments import tables
from softvq_tf.layers import registry
from softvq_tf.training import rundir
from softvq_tf.training.errors import ArgumentParser, DataError, console_entry

SPREAD_LIMIT = 1.0  # the paper: "The variances of all the results are within 1 percent" (read: std <= 1 point)
# (metric, label, scale to points): NMI in points is NMI x 100.
SPREAD_METRICS = (("acc", "ACC", 1), ("nmi", "NMI x 100", 100), ("cls", "cls", 1))
# Claim 2's two linear probes: the paper's (a Dense layer, 30 epochs) and the same model class trained to convergence.
PROBES = (("cls", "Dense probe"), ("cls_logreg", "converged logistic regression"))


def load_table(path):
    """The six bottlenecks' entries of a reproduction's JSON (raw data and variant rows left out)."""
    try:
        with open(path) as f:
            table = json.load(f)["table"]
    except FileNotFoundError:
        raise DataError(f"no table at {path}: write it with softvq-reproduce (add --from-store to train nothing)")
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DataError(f"{path} is not a softvq-reproduce table (no 'table' list); write it again with --from-store")
    common = tables.common_variant(table)
    six = [
        e
        for e in table
        if e["model"] in registry.PAPER_NAMES and tables.display_name(e, common) == tables.MODEL_NAMES[e["model"]]
    ]
    if not any(e["model"] == registry.PROPOSED for e in six):
        raise DataError(f"{path} has no soft VQ-VAE row to compare with")
    return six, protocol_label(six[0]["dataset"], common)


def protocol_label(dataset, common):
    """``"40,000 steps at batch 32 (the preset)"`` or ``"20,000 steps at batch 64"``: the budget a table was
    trained with, from its common variant and the data set's preset.
    """
    from softvq_tf.training.config import resolve_config  # noqa: PLC0415 (the presets, only when labelling)

    preset = resolve_config(dataset, registry.BASELINE)
    settings = dict(kv.split("=", 1) for kv in common.split(", ") if "=" in kv)
    steps = int(settings.pop("steps", preset.steps))
    batch = int(settings.pop("batch_size", preset.batch_size))
    others = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return f"{steps:,} steps at batch {batch}" + (f", {others}" if others else "" if common else " (the preset)")


def _verdict(interval):
    """'better', 'worse' or 'level' for the soft VQ-VAE, from (rival - soft) with its interval; None: too few seeds."""
    if interval is None:
        return None
    _, low, high = interval
    return "better" if high < 0 else "worse" if low > 0 else "level"


def best_of_six(six, metric):
    """Is the soft VQ-VAE ahead of each rival on ``metric``? ``(verdict, [(model, (diff, low, high), verdict)])``.

    ``holds``: ahead of all five with intervals excluding 0; ``fails``: some rival is ahead with its interval
    excluding 0; ``not shown``: otherwise (fewer than 2 seeds somewhere, or a rival missing).
    """
    diffs = tables.differences(six)  # rival minus the soft VQ-VAE, every compared metric
    rivals = [
        (e["model"], diffs[key][metric], _verdict(diffs[key][metric]))
        for e in six
        if (key := e["identity_key"]) in diffs
    ]
    verdicts = [v for _, _, v in rivals]
    if "worse" in verdicts:
        return "fails", rivals
    complete = len(rivals) == len(registry.PAPER_NAMES) - 1  # a rival without a row cannot be beaten
    return ("holds" if complete and all(v == "better" for v in verdicts) else "not shown"), rivals


def classification_against_ae(six, probe="cls"):
    """The soft VQ-VAE's linear classification against the AE's: ``(verdict, (ae - soft, low, high))``.

    The claim is "at least the AE's": it ``holds`` where the soft VQ-VAE is ahead, is ``level`` where the
    interval includes 0, and ``fails`` where the AE is ahead. ``probe``: ``cls``, the paper's single Dense
    layer trained briefly, or ``cls_logreg``, a logistic regression trained to convergence; the paper's
    "single-layer classification" allows both.
    """
    ae = next((e for e in six if e["model"] == registry.BASELINE), None)
    if ae is None:
        return None, None
    interval = tables.differences(six)[ae["identity_key"]][probe]
    verdict = {"better": "holds", "level": "level", "worse": "fails", None: None}[_verdict(interval)]
    return verdict, interval


def spreads_over_limit(six, limit=SPREAD_LIMIT):
    """Every ``(model, label, std in points)`` whose sample std over seeds exceeds ``limit`` points."""
    out = []
    for e in six:
        for metric, label, scale in SPREAD_METRICS:
            std = e.get(metric + "_std")
            if std is not None and std * scale > limit:
                out.append((e["model"], label, std * scale))
    return out


def ranking(six, metric):
    """Models by mean ``metric``, best first."""
    return [e["model"] for e in sorted(six, key=lambda e: -e[metric])]


def swaps(first, second, metric):
    """Pairs ordered one way by mean ``metric`` in ``first`` and the other way in ``second``: ``[(a, b, sure)]``.

    ``a`` is ahead in ``first``; ``sure`` is whether both tables' intervals for the pair exclude 0 (a swap
    that is only noise in either table is not a change of order).
    """
    by_model = [{e["model"]: e for e in six} for six in (first, second)]
    models = [m for m in ranking(first, metric) if m in by_model[1]]
    out = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            if by_model[1][a][metric] < by_model[1][b][metric]:
                sure = all(
                    _verdict(tables.welch_interval(t[a][metric + "_values"], t[b][metric + "_values"])) != "level"
                    for t in by_model
                )
                out.append((a, b, sure))
    return out


def _name(model):
    return tables.MODEL_NAMES[model]


def _interval_text(interval, digits):
    if interval is None:
        return "fewer than 2 seeds"
    diff, low, high = interval
    return f"{diff:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def report(protocols, command):
    """Markdown: each claim, per protocol, with its verdict and the numbers behind it."""
    lines = [
        "# The paper's claims, one by one",
        "",
        command,
        "",
        "Differences are rival minus soft VQ-VAE, mean over seeds with a 95% Welch interval. A claim holds only "
        "where every interval needed excludes 0; an interval that includes 0 shows nothing either way.",
        "",
        "## 1. The soft VQ-VAE is the best of the six on clustering (ACC, near-best ACC, NMI)",
        "",
    ]
    for label, six in protocols:
        seeds = ", ".join(f"{_name(e['model'])} {e['n']}" for e in six)
        lines += [
            f"**{label}** (seeds: {seeds})",
            "",
            "| rival | ACC (%) | near-best ACC (%) | NMI |",
            "|---|---|---|---|",
        ]
        results = {metric: best_of_six(six, metric) for metric in ("acc", "acc_near_best", "nmi")}
        for i, (model, _, _) in enumerate(results["acc"][1]):
            cells = []
            for metric, digits in (("acc", 2), ("acc_near_best", 2), ("nmi", 4)):
                _, interval, verdict = results[metric][1][i]
                cells.append(f"{_interval_text(interval, digits)} {verdict or ''}".strip())
            lines.append(f"| {_name(model)} | " + " | ".join(cells) + " |")
        lines += ["", "Verdict: " + ", ".join(f"{m} {results[m][0]}" for m in ("acc", "acc_near_best", "nmi")), ""]
    lines += ["## 2. Its classification is at least the AE's", ""]
    for label, six in protocols:
        probes = []
        for probe, name in PROBES:
            verdict, interval = classification_against_ae(six, probe)
            probes.append(f"{name} {_interval_text(interval, 2)}: {verdict or 'n/a'}")
        lines.append(f"- **{label}**: AE minus soft VQ-VAE, points. " + "; ".join(probes))
    lines += ["", f"## 3. Every result's spread over seeds is within {SPREAD_LIMIT:g} point", ""]
    for label, six in protocols:
        over = spreads_over_limit(six)
        text = "; ".join(f"{_name(m)} {what} {std:.2f}" for m, what, std in over)
        lines.append(f"- **{label}**: " + (f"fails: {text} (sample std, points)" if over else "holds"))
    if len(protocols) > 1:
        lines += ["", "## 4. Does the protocol change the order?", ""]
        (first_label, first), (second_label, second) = protocols[0], protocols[1]
        for metric, label in (("acc", "ACC"), ("nmi", "NMI"), ("cls", "cls")):
            orders = " / ".join(" > ".join(_name(m) for m in ranking(six, metric)) for six in (first, second))
            swapped = swaps(first, second, metric)
            by_mean = "; ".join(f"{_name(a)} vs {_name(b)}" for a, b, _ in swapped) or "none"
            shown = "; ".join(f"{_name(a)} vs {_name(b)}" for a, b, sure in swapped if sure) or "none"
            lines.append(
                f"- {label}: {orders}. Pairs that swap by mean: {by_mean}. "
                f"Swaps shown (the pair's interval excludes 0 in both tables): {shown}."
            )
        lines.append(f"\n(Orders by mean: {first_label} / {second_label}.)")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = ArgumentParser(prog="softvq-claims", description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="+", help="softvq-reproduce JSON tables, one per protocol")
    p.add_argument("--output", help="write the report here (Markdown) instead of printing it")
    args = p.parse_args(argv)
    protocols = [(label, six) for six, label in map(load_table, args.tables)]
    text = report(protocols, tables.command_line("softvq-claims", argv))
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        rundir.write_atomic(args.output, text)
        print(f"written: {args.output}")
    else:
        print(text, end="")
    return 0


run = console_entry(main)

if __name__ == "__main__":
    run()
