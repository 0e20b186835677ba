"""The steadiness benchmark: which runs count as slow, its settings, and a smoke run of the command."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import FASHION, assert_one_line_error, run_script

from benchmarks.steadiness import parse_setting, report, slow_runs
from benchmarks.train_runs import (
    busiest_pair_shares_a_cpu,
    machine_cpu_seconds,
    run_queue_seconds,
    thread_cpu_seconds,
    thread_placement,
)
from softvq_tf.training.errors import UsageError


def test_a_run_is_slow_below_80_percent_of_the_fastest_speed():
    # Speeds relative to the best (10 s): 1.0, 0.8 (the bound, not slow), 0.79, 0.5.
    assert slow_runs([10.0, 12.5, 12.66, 20.0]) == [2, 3]
    assert slow_runs([30.0, 30.0]) == []


def test_settings_are_names_with_environment_variables():
    assert parse_setting("default:") == ("default", {})
    assert parse_setting("one:TF_NUM_INTEROP_THREADS=1,OMP_NUM_THREADS=2") == (
        "one",
        {"TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "2"},
    )
    for bad in ("noname", ":A=1", "x:A"):
        with pytest.raises(UsageError, match="--setting"):
            parse_setting(bad)


def test_thread_cpu_seconds_reads_this_process_threads():
    sum(i * i for i in range(300_000))  # some CPU time on the main thread
    threads = thread_cpu_seconds(os.getpid())
    assert threads and all(seconds >= 0 for seconds in threads.values()) and sum(threads.values()) > 0
    assert thread_cpu_seconds(2**22 + 12345) == {}  # no such process: nothing, no error


def test_machine_busy_seconds_grow_with_work():
    (busy_before, steal_before) = machine_cpu_seconds()
    sum(i * i for i in range(3_000_000))  # about 0.2 s on one core
    busy, steal = machine_cpu_seconds()
    assert busy - busy_before > 0.05 and steal >= steal_before


def test_run_queue_seconds_grow_while_processes_outnumber_the_cores():
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range((os.cpu_count() or 1) + 1)]
    try:
        time.sleep(1.0)
        queued = [run_queue_seconds(p.pid) for p in spinners]
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert sum(queued) > 0.1  # one process more than cores: about a core-second of waiting between them
    assert run_queue_seconds(2**22 + 12345) == 0.0  # no such process: nothing, no error


def test_thread_placement_names_each_thread_and_its_cpu():
    placement = thread_placement(os.getpid())
    assert os.getpid() in placement  # the main thread's id is the process id
    assert all(seconds >= 0 and 0 <= cpu < 4096 for seconds, cpu in placement.values())
    assert thread_placement(2**22 + 12345) == {}


def test_busiest_pair_shares_a_cpu_compares_the_two_threads_that_ran_most():
    before = {1: (1.0, 0), 2: (1.0, 1), 3: (5.0, 1)}
    # Threads 1 and 2 ran 0.4 s each in the interval; thread 3 did not run (idle pool thread on CPU 0 or 1).
    assert busiest_pair_shares_a_cpu(before, {1: (1.4, 0), 2: (1.4, 1), 3: (5.0, 0)}) is False
    assert busiest_pair_shares_a_cpu(before, {1: (1.4, 1), 2: (1.4, 1), 3: (5.0, 0)}) is True
    assert busiest_pair_shares_a_cpu(before, {1: (1.4, 1), 2: (1.01, 0), 3: (5.0, 1)}) is None  # one thread busy
    assert busiest_pair_shares_a_cpu({}, {1: (0.2, 0), 4: (0.3, 0)}) is True  # new threads count from 0


def test_the_report_names_what_each_slow_run_lost():
    fast = {"fit": 10.0, "cores": 1.7, "waiting": 0.1, "other_cores": 0.0, "steal": 0.0, "shared_cpu": 0.1}
    slow = {"fit": 20.0, "cores": 1.0, "waiting": 0.0, "other_cores": 0.0, "steal": 9.5, "shared_cpu": 0.9}
    args = type("Args", (), {"steps": 2500, "batch_size": 64})()
    text = report([("default", {})], {"default": [fast, slow, fast]}, args, ["--runs", "3"])
    row = next(line for line in text.splitlines() if line.startswith("| default"))
    assert "| 1 |" in row and "**20.0 (1.00)**" in row
    assert "1.00, 0.00, 0.00, 9.5, 90% (1.70, 0.10, 0.00, 0.0, 10%)" in row


@pytest.mark.slow
def test_steadiness_smoke_alternates_settings_and_writes_the_report(tmp_path):
    output = tmp_path / "s.md"
    args = ["-m", "benchmarks.steadiness", "--runs", "2", "--steps", "20", "--data-dir", FASHION]
    result = run_script([*args, "--setting", "a:", "--setting", "b:TF_NUM_INTEROP_THREADS=1", "--output", str(output)])
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    order = [m.group(1) for m in re.finditer(r"^(\S+) run \d+: fit ", result.stdout, re.MULTILINE)]
    assert order == ["a", "b", "a", "b"]  # the settings take turns
    runs = json.load(open(tmp_path / "s.json"))
    assert all(len(runs[name]) == 2 and all(r["fit"] > 0 and r["cores"] > 0 for r in runs[name]) for name in "ab")
    assert all(sum(r["thread_cpu_seconds"].values()) > 0 for r in runs["a"])  # the threads were sampled
    assert all(r["other_cores"] >= 0 and r["steal"] >= 0 and r["waiting"] >= 0 for r in runs["a"])  # and the machine
    assert all(r["shared_cpu"] is None or 0 <= r["shared_cpu"] <= 1 for r in runs["a"])
    assert "`TF_NUM_INTEROP_THREADS=1`" in output.read_text()
    assert_one_line_error(run_script([*args, "--setting", "a:", "--runs", "1"]), "--runs")
