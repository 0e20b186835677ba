"""What the probes cost beside training: ``python train.py`` then ``python evaluate.py``, timed side by side.

For each network (the paper's MLP at K = 128, the 7 x 7 grid at K = 512), soft VQ on the full
Fashion-MNIST for ``--steps`` steps at batch 32: the wall-clock seconds of the training command and of
``evaluate.py --no-raw`` on its run, their ratio, the probes' own seconds (the line ``evaluate.py``
prints), and how many convergence warnings the evaluation printed. Run it on an otherwise idle machine:

    python benchmarks/probe_cost.py --steps 2000 --output results/probe_cost.md
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

FASHION = "/usr/share/datasets/fashion-mnist"
NETWORKS = {"mlp": ["--K", "128"], "conv_grid": ["--network", "conv_grid", "--K", "512"]}
GOALS = {"mlp": 1.2, "conv_grid": 0.5}  # evaluate / training at 2,000 steps (issue #44)


def timed(command):
    """``(wall seconds, stdout + stderr)`` of ``python command...`` from the repository root."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=_root())
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds, result.stdout + result.stderr


def _root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(network, steps, out):
    train = ["train.py", "--dataset", "fashion_mnist", "--data-dir", FASHION, "--bottleneck", "soft_vq"]
    train += [*NETWORKS[network], "--steps", str(steps), "--out", out, "--quiet"]
    train_seconds, _ = timed(train)
    evaluate_seconds, log = timed(["evaluate.py", "--root", out, "--no-raw"])
    warnings = len(re.findall(r"ConvergenceWarning|failed to converge|DID NOT CONVERGE", log))
    probes = re.search(r"probe seconds: (.*)", log)
    return train_seconds, evaluate_seconds, warnings, probes.group(1) if probes else "-"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--output", help="append the Markdown table here too")
    args = p.parse_args(argv)
    lines = [
        f"`python benchmarks/probe_cost.py --steps {args.steps}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
        "cores):",
        "",
        "| network | training (s) | evaluate.py (s) | evaluate / training | goal | convergence warnings | probes (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for network in args.networks:
        with tempfile.TemporaryDirectory() as out:
            train_seconds, evaluate_seconds, warnings, probes = measure(network, args.steps, out)
        ratio = evaluate_seconds / train_seconds
        lines.append(
            f"| {network} | {train_seconds:.1f} | {evaluate_seconds:.1f} | {ratio:.2f} | <= {GOALS[network]} | "
            f"{warnings} | {probes} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
