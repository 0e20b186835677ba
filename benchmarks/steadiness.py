"""Steadiness: do back-to-back whole training runs keep their speed? Counts the slow ones per setting.

    python -m benchmarks.steadiness --runs 20 \\
        --setting default: --setting one-interop-thread:TF_NUM_INTEROP_THREADS=1 --output results/steadiness.md

Each ``--setting NAME:VAR=VALUE,...`` runs ``--runs`` whole ``train.py`` runs
(Fashion-MNIST MLP, soft VQ-VAE, default flags) with those environment
variables. The settings take turns, run by run, so a drift of the machine over
the hour hits all of them alike. A run is slow when its training time (from
its ``history.json``: the fit alone, no start-up or export) is below 80% of
the speed of the setting's fastest run. Each run's JSON record also keeps the CPU seconds
of its busiest threads by name (sampled every half second from ``/proc``), the cores
the rest of the machine kept busy meanwhile, the seconds the VM host stole, and how many
of its threads were ready but queued for a core on average, so a slow run shows whether a
thread pool went idle, its threads queued for a core, were packed onto one CPU (the share of
samples in which its two busiest threads last ran on the same CPU), or the CPU went to something else.
Run it on an otherwise idle machine.
"""

import json
import os
import sys
import tempfile

import numpy as np

from benchmarks.train_runs import FASHION, train_run
from softvq_tf.experiments.tables import command_line
from softvq_tf.training.errors import ArgumentParser, UsageError, console_entry
from softvq_tf.training.rundir import write_atomic

SLOW = 0.8  # a run below this fraction of the best run's speed is slow


def parse_setting(text):
    """``"NAME:VAR=VALUE,..."`` -> ``(NAME, {VAR: VALUE})``."""
    name, sep, assignments = text.partition(":")
    if not sep or not name:
        raise UsageError(f"--setting must look like NAME:VAR=VALUE,... (got {text!r})")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--setting {name}: {item!r} is not VAR=VALUE")
        env[key] = value
    return name, env


def slow_runs(seconds, fraction=SLOW):
    """Indices of runs whose speed (1 / seconds) is below ``fraction`` of the fastest run's."""
    best = min(seconds)
    return [i for i, s in enumerate(seconds) if best / s < fraction]


def _one_run(flags, env, out, steps):
    """One whole run (``train_runs.train_run``) and its fit time, read from its ``history.json``."""
    run = train_run(flags, steps, out, env)
    (name,) = os.listdir(out)
    with open(os.path.join(out, name, "history.json")) as f:
        fit_seconds = json.load(f)["seconds_this_session"]
    return {
        "wall": run["wall"],
        "fit": fit_seconds,
        "cores": run["cores"],
        "waiting": run["waiting"],
        "other_cores": run["other_cores"],
        "steal": run["steal"],
        "shared_cpu": run["shared_cpu"],
        "thread_cpu_seconds": run["threads"],
    }


def _median(runs, key):
    values = [r.get(key) for r in runs if r.get(key) is not None]
    return float(np.median(values)) if values else None


# What a slow run's record shows, in order (cores, queued, others, stolen, one CPU), and its format.
RECORD_FIELDS = (
    ("cores", "{:.2f}"),
    ("waiting", "{:.2f}"),
    ("other_cores", "{:.2f}"),
    ("steal", "{:.1f}"),
    ("shared_cpu", "{:.0%}"),
)


def _record(run):
    """``RECORD_FIELDS`` of one run (or of the medians); ``-`` where not measured."""
    return ", ".join("-" if run.get(key) is None else fmt.format(run[key]) for key, fmt in RECORD_FIELDS)


def report(settings, results, args, argv):
    lines = [
        "# Steadiness of back-to-back training runs",
        "",
        command_line("python -m benchmarks.steadiness", argv),
        "",
        f"Each run: `train.py --dataset fashion_mnist --bottleneck soft_vq --steps {args.steps} --batch-size "
        f"{args.batch_size}` (default flags) with the setting's environment; settings take turns run by run. "
        f"Slow: fit time more than 1/{SLOW:g} of the setting's fastest run's. Cores: CPU seconds / wall seconds. "
        "Each slow run's record: cores busy, threads queued for a core, cores busy in other processes, "
        "seconds stolen by the VM host, and the share of half-second samples in which the run's two busiest "
        "threads last ran on one CPU (packed by the guest kernel); the medians of all runs beside them.",
        "",
        "| setting | environment | runs | slow runs | fit seconds: best / median / worst | cores busy: median (min) "
        "| slow runs: cores, queued, others, stolen s, one CPU (median of all) | every run's fit seconds (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, env in settings:
        runs = results[name]
        fit = [r["fit"] for r in runs]
        cores = [r["cores"] for r in runs]
        slow = slow_runs(fit)
        every = ", ".join(
            ("**" if i in slow else "") + f"{r['fit']:.1f} ({r['cores']:.2f})" + ("**" if i in slow else "")
            for i, r in enumerate(runs)
        )
        environment = ", ".join(f"`{k}={v}`" for k, v in env.items()) or "-"
        medians = {key: _median(runs, key) for key, _ in RECORD_FIELDS}
        causes = "; ".join(_record(r) for i, r in enumerate(runs) if i in slow) or "-"
        lines.append(
            f"| {name} | {environment} | {len(runs)} | {len(slow)} | {min(fit):.1f} / {np.median(fit):.1f} / "
            f"{max(fit):.1f} | {np.median(cores):.2f} ({min(cores):.2f}) | {causes} ({_record(medians)}) | {every} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = ArgumentParser(prog="steadiness", description=__doc__.split("\n\n")[0])
    p.add_argument("--setting", action="append", required=True, help="NAME:VAR=VALUE,... (repeatable)")
    p.add_argument("--runs", type=int, default=20, help="runs per setting (default 20)")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", default=FASHION)
    p.add_argument("--output", help="Markdown report (JSON beside it)")
    args = p.parse_args(argv)
    if args.runs < 2:
        raise UsageError(f"--runs must be >= 2, got {args.runs}")
    if not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir} does not exist; apt-get install dataset-fashion-mnist")
    settings = [parse_setting(s) for s in args.setting]
    flags = ["--dataset", "fashion_mnist", "--data-dir", args.data_dir, "--bottleneck", "soft_vq"]
    flags += ["--batch-size", str(args.batch_size)]
    results = {name: [] for name, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, env in settings:
                run = _one_run(flags, env, os.path.join(tmp, f"{name}-{i}"), args.steps)
                results[name].append(run)
                machine = f", queued {run['waiting']:.2f}"
                machine += "" if run["other_cores"] is None else f", other processes {run['other_cores']:.2f} cores"
                steal = "" if run["steal"] is None else f", stolen {run['steal']:.1f} s"
                steal += "" if run["shared_cpu"] is None else f", busiest two on one CPU {run['shared_cpu']:.0%}"
                print(
                    f"{name} run {i}: fit {run['fit']:.1f} s, wall {run['wall']:.1f} s, cores {run['cores']:.2f}"
                    + machine
                    + steal
                )
                sys.stdout.flush()
    text = report(settings, results, args, argv)
    print(text)
    if args.output:
        write_atomic(args.output, text)
        write_atomic(os.path.splitext(args.output)[0] + ".json", json.dumps(results, indent=2) + "\n")
    return 0


run = console_entry(main)

if __name__ == "__main__":
    run()
