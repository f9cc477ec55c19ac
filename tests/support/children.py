"""Run a command in a child process and measure that child alone: exit code, time, peak RSS.

Linux gives a forked child the parent's resident size as its starting high-water mark, and exec
keeps it: a child of a 250 MB pytest worker reports at least 250 MB whatever it does. So the
measured command is started by a small runner process, which reports its ``wait4`` rusage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUNNER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, cwd=sys.argv[2],
                         stdout=open(sys.argv[1] + ".out", "wb"),
                         stderr=open(sys.argv[1] + ".err", "wb"))
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as report:
    json.dump({"code": child.returncode, "maxrss_kib": usage.ru_maxrss}, report)
"""


def run_measured(
    command: list[str], env: dict[str, str], workdir: Path, report: Path, timeout: float
) -> tuple[int, float, float, str, str]:
    """(exit code, seconds, peak RSS MB of the command alone, stdout, stderr); a command still
    running after ``timeout`` seconds is killed (with its runner) and TimeoutExpired raised."""
    import time

    start = time.monotonic()
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(report), str(workdir), *command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        runner.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, 9)
        runner.wait()
        raise
    seconds = time.monotonic() - start
    outcome = json.loads(report.read_text())
    return (
        outcome["code"],
        seconds,
        outcome["maxrss_kib"] / 1024,  # KiB on Linux
        Path(f"{report}.out").read_text(errors="replace"),
        Path(f"{report}.err").read_text(errors="replace"),
    )
