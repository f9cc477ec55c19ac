"""bench.stage.cpu_seconds: what P7 reports of each side's CPU (this process, or another by pid)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.stage import cpu_seconds

SPIN = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.4: pass\n"
    "sys.stdin.read()"
)


def _spin(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_cpu_seconds_counts_what_this_process_spent():
    before = cpu_seconds()
    _spin(0.3)
    assert cpu_seconds() - before >= 0.25


def test_cpu_seconds_of_another_process_by_its_pid():
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(child.pid) < 0.35 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(child.pid) >= 0.35
    finally:
        child.communicate(b"")
    assert cpu_seconds(child.pid) == 0.0  # gone: nothing to read
