"""Idle CPUs kept awake while training: idle-priority spinners, one per CPU, gone with the training."""

import os
import subprocess
import sys
import time

import pytest

from softvq_tf.training import awake

linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def test_the_flag_wins_and_the_environment_variable_is_the_default(monkeypatch):
    monkeypatch.delenv(awake.ENVIRONMENT_VARIABLE, raising=False)
    assert awake.wanted() is False and awake.wanted(True) is True
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(awake.ENVIRONMENT_VARIABLE, value)
        assert awake.wanted() is expected and awake.wanted(False) is False


@linux_only
def test_one_idle_priority_spinner_per_cpu_and_none_after_the_block():
    with awake.cores_kept_awake() as spinners:
        assert len(spinners) == len(os.sched_getaffinity(0))
        deadline = time.time() + 10
        while not all(os.sched_getscheduler(pid) == os.SCHED_IDLE for pid in spinners):
            assert time.time() < deadline, "the spinners never took idle priority"
            time.sleep(0.05)
        assert all(_alive(pid) for pid in spinners)
    _gone_within(spinners, 10)
    with awake.cores_kept_awake(False) as none:
        assert none == []


@linux_only
def test_spinners_exit_by_themselves_when_the_training_is_killed():
    code = (
        "import time\nfrom softvq_tf.training import awake\n"
        "with awake.cores_kept_awake() as s:\n    print(*s, flush=True)\n    time.sleep(60)\n"
    )
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(pid) for pid in trainer.stdout.readline().split()]
    assert pids and all(_alive(pid) for pid in pids)
    trainer.kill()  # SIGKILL: no finally block runs
    trainer.wait()
    _gone_within(pids, 10)


def _gone_within(pids, seconds):
    deadline = time.time() + seconds
    while any(_alive(pid) for pid in pids):
        assert time.time() < deadline, "a spinner outlived its training"
        time.sleep(0.1)
