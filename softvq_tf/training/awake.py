"""Keep the machine's idle CPUs awake while training, for VMs whose idle vCPUs wake slowly.

TensorFlow's thread pools hand every step's work out in small parallel pieces;
a pool thread that finds no work sleeps, and its CPU goes idle. On a virtual
machine an idle vCPU halts and goes back to the host, and waking it for the
next piece waits for the host's scheduler: on the 2-core VMs of this project
a cross-CPU wake-up took 60-1,200 us (median of 2,000; up to 9 ms at the 90th
percentile) where bare metal takes a few. A run that lands in that state
keeps about 1.1 cores busy instead of 1.6 and takes 1.6x as long (see
``results/steadiness_*.md``).

``cores_kept_awake`` starts one busy process per CPU at Linux's ``SCHED_IDLE``
priority: it runs only when nothing else wants the CPU, so it takes no time
from training, but the vCPU never halts and a woken pool thread starts at
once. It burns the idle CPU time, so it is opt-in: ``--keep-cores-awake`` or
``SOFTVQ_KEEP_CORES_AWAKE=1``, for a dedicated VM, never a laptop or a
shared server. The processes exit with the training, or by themselves within
a second if it is killed. Off Linux it does nothing.
"""

import contextlib
import os
import signal
import subprocess
import sys

ENVIRONMENT_VARIABLE = "SOFTVQ_KEEP_CORES_AWAKE"

# The spinner. Its launcher forks it and exits at once, so the spinner is not this process's child: its CPU
# time never counts as the training's (getrusage of a benchmark), and it needs no reaping. It takes idle
# priority, then stays busy until the training is gone (checked between bursts of about 10 ms).
_SPINNER = """
import os, sys
training = int(sys.argv[1])
pid = os.fork()
if pid:
    print(pid, flush=True)
    os._exit(0)
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):  # let go of the launcher's pipes, or the training would wait for their end
    os.dup2(devnull, fd)
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
while True:
    for _ in range(200_000):
        pass
    try:
        os.kill(training, 0)
    except ProcessLookupError:
        os._exit(0)
"""


def wanted(flag=None):
    """The flag if given, else the environment variable (``1``, ``true`` or ``yes``)."""
    if flag is not None:
        return flag
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _start_spinner():
    launcher = subprocess.run(
        [sys.executable, "-c", _SPINNER, str(os.getpid())], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    return int(launcher.stdout)


@contextlib.contextmanager
def cores_kept_awake(enabled=True):
    """Within the block, one ``SCHED_IDLE`` busy process per CPU this process may run on (Linux only);
    yields their process ids."""
    if not enabled or not hasattr(os, "SCHED_IDLE") or not hasattr(os, "sched_getaffinity"):
        yield []
        return
    spinners = []
    try:
        for _ in os.sched_getaffinity(0):
            spinners.append(_start_spinner())
        yield spinners
    finally:
        for pid in spinners:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
