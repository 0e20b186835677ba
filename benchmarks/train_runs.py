"""Whole ``python train.py`` runs timed by the wall clock, with what the machine did meanwhile.

Shared by ``bench.py`` (steps/s of the default path) and ``steadiness.py``
(how steady whole runs are): a slow run shows which thread pool idled, whether
its threads queued for a core, or whether the guest kernel packed them onto one CPU.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"


def machine_cpu_seconds():
    """``(busy, steal)``: CPU seconds all CPUs of this machine spent busy, and the VM host took, so far.

    From ``/proc/stat``'s first line (busy: all but idle, iowait and steal); None off Linux.
    """
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def _task_files(pid, name):
    """The text of ``/proc/PID/task/*/NAME`` for each live thread of process ``pid`` (none off Linux, or once
    the process has ended; a thread that ends meanwhile is skipped)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/{name}") as f:
                yield f.read()
        except OSError:
            continue  # the thread ended


def _thread_stats(pid):
    """``(thread id, name, CPU seconds, CPU it last ran on)`` per live thread of process ``pid``, from
    ``/proc/PID/task/*/stat`` (utime + stime, and field 39, ``processor``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    for text in _task_files(pid, "stat"):
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        yield int(text.split()[0]), name, (int(fields[11]) + int(fields[12])) / ticks, int(fields[36])


def thread_cpu_seconds(pid):
    """CPU seconds of each live thread of process ``pid``, summed by thread name (Linux ``/proc``; {} elsewhere)."""
    by_name = {}
    for _, name, seconds, _ in _thread_stats(pid):
        by_name[name] = by_name.get(name, 0.0) + seconds
    return by_name


def run_queue_seconds(pid):
    """Seconds the live threads of process ``pid`` spent ready to run but waiting for a core (Linux
    ``/proc/PID/task/*/schedstat``, second field; 0.0 elsewhere): high when the process has more
    runnable threads than the machine has cores free, near 0 when a thread pool sits idle."""
    return sum(int(text.split()[1]) for text in _task_files(pid, "schedstat")) / 1e9


def thread_placement(pid):
    """``{thread id: (CPU seconds, CPU it last ran on)}`` for each live thread of process ``pid`` (Linux
    ``/proc``; {} elsewhere)."""
    return {tid: (seconds, cpu) for tid, _, seconds, cpu in _thread_stats(pid)}


def busiest_pair_shares_a_cpu(before, after, active_seconds=0.05):
    """Whether the two threads that used the most CPU between two ``thread_placement`` samples last ran on
    the same CPU; None when fewer than two used ``active_seconds``. Two threads of one step's parallel work
    that keep landing on one CPU run one at a time: the guest kernel packed them, and the run serialises."""
    used = sorted(((cpu - before.get(tid, (0.0, None))[0], tid) for tid, (cpu, _) in after.items()), reverse=True)
    if len(used) < 2 or used[1][0] < active_seconds:
        return None
    return after[used[0][1]][1] == after[used[1][1]][1]


def train_run(args, steps, out, env=None, sample_seconds=0.5):
    """One whole ``python train.py`` run, with ``env`` added to the environment.

    Returns ``{wall, cores, waiting, other_cores, steal, shared_cpu, threads}``: wall seconds, cores
    busy on average, threads of the run ready but waiting for a core on average, cores the
    rest of the machine kept busy meanwhile (other processes, the kernel), seconds stolen by
    the VM host, the fraction of samples in which the run's two busiest threads last ran on
    one CPU (``busiest_pair_shares_a_cpu``), and the CPU seconds of the run's busiest threads
    by name (sampled every ``sample_seconds`` while it runs; the wait returns as soon as it
    ends), so a slow run shows which thread pool idled, whether its threads queued for a core,
    or whether they were packed onto one CPU.
    """
    import resource

    command = [sys.executable, "-m", "softvq_tf.training.cli", *args, "--steps", str(steps), "--out", out, "--quiet"]
    before, machine_before = resource.getrusage(resource.RUSAGE_CHILDREN), machine_cpu_seconds()
    threads, queued, placement, shared = {}, 0.0, {}, []
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=errors)
        while True:
            try:
                proc.wait(timeout=sample_seconds)
                break
            except subprocess.TimeoutExpired:
                threads = thread_cpu_seconds(proc.pid) or threads  # the last sample before the process ends
                queued = max(queued, run_queue_seconds(proc.pid))
                placement, previous = thread_placement(proc.pid), placement
                verdict = busiest_pair_shares_a_cpu(previous, placement)
                shared += [] if verdict is None else [verdict]
        seconds = time.perf_counter() - start
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"train.py {' '.join(args)} --steps {steps} failed: {stderr.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / seconds
    others = stolen = None
    if machine_before is not None:
        (busy, steal), (busy_before, steal_before) = machine_cpu_seconds(), machine_before
        others, stolen = max(0.0, (busy - busy_before) / seconds - cpu), steal - steal_before
    busiest = dict(sorted(threads.items(), key=lambda item: -item[1])[:6])
    return {
        "wall": seconds,
        "cores": cpu,
        "waiting": queued / seconds,
        "other_cores": others,
        "steal": stolen,
        "shared_cpu": float(np.mean(shared)) if shared else None,
        "threads": busiest,
    }


def time_train_runs(args, short, long, pairs):
    """One ``{steps_per_s, cores, steal}`` per (short, long) pair of whole ``train.py`` runs (cores, steal:
    the long run).
    """
    pairs_out = []
    with tempfile.TemporaryDirectory() as out:
        for pair in range(pairs):
            t_short = train_run(args, short, os.path.join(out, f"short{pair}"))["wall"]
            run = train_run(args, long, os.path.join(out, f"long{pair}"))
            # Runs of a few steps (smoke tests) can differ by less than the noise: no figure then.
            rate = (long - short) / (run["wall"] - t_short) if run["wall"] > t_short else float("nan")
            pairs_out.append({"steps_per_s": rate, "cores": run["cores"], "steal": run["steal"]})
    return pairs_out
