"""Bench P7 (SPEC P): the 60-date run fanned out on the work queue (``INVOICE_DISPATCH=queue``)
with 4 ``worker`` processes, against the same run inline in one process (the floor).

``python -m bench.fanout P7|P7floor --workbook W --connection C [--items N]`` prints one JSON
object like ``bench.stage``: ``seconds``, ``items``, ``invoices``, ``peak_rss_mb``. Each imports
the workbook into an empty store first (untimed), on an Azurite of its own (``bench.__main__``
starts one per stage, in memory, so both meet the same emulator state and neither pays for the
emulator's autosave of its data folder).

* ``P7floor``: ``runs.run_daily`` inline over the 60 run dates (``DEFAULT_WORKERS`` threads), the
  very code path of P5.
* ``P7``: 4 ``python -m invoicing worker`` processes are started and polling the empty queue
  before the clock starts (warm instances, as the Functions host keeps them); timed from the
  dispatching ``run`` (under the lease: the date choice, the work rows, one message per
  contract) until the ledger shows every run date completed (polled every 0.2 s). ``peak_rss_mb``
  is the largest of the dispatching process and each worker (``wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stage import (
    SPAN,
    _read,
    _settings,
    _transactions,
    cpu_seconds,
    peak_rss_mb,
    reset_peak_rss,
)

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4
POLL = 0.2
TIMEOUT = 3600


def _imported(args: argparse.Namespace, data: bytes, prefix: str):
    import dataclasses

    from invoicing.services import import_workbook, open_store

    settings = dataclasses.replace(_settings(args), table_prefix=prefix)
    store = open_store(settings)
    import_workbook(store, data, settings)
    return store, settings


def p7_floor(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from invoicing.services.runs import run_daily

    items = _transactions(_read(data))
    store, settings = _imported(args, data, "inline")
    reset_peak_rss()
    cpu = _Cpu(args.azurite_pid, [])
    started = time.perf_counter()
    summary = run_daily(store, settings, span=SPAN)
    seconds = time.perf_counter() - started
    used = cpu.used()
    # a contract that failed (a reset connection on a loaded machine) leaves its dates
    # incomplete: reported, so that a comparison with P7 can be judged
    return {
        "seconds": seconds,
        "items": items,
        "invoices": summary.invoices,
        "failed_contracts": len(summary.failed),
        **used,
    }


def p7(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    import dataclasses as dc

    from invoicing import services
    from invoicing.settings import QUEUE

    items = _transactions(_read(data))
    settings = dc.replace(_settings(args), table_prefix="queued", dispatch=QUEUE)
    settings = dc.replace(settings, queue_name="bench-work")
    env = {
        **{k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"},
        "INVOICING_STORAGE": settings.storage_connection or "",
        "INVOICE_TABLE_PREFIX": settings.table_prefix,
        "INVOICE_LEASE_SECONDS": str(settings.lease_seconds),
        "INVOICE_DISPATCH": QUEUE,
        "INVOICE_QUEUE": settings.queue_name,
    }
    # started before this process holds the workbook: a forked child starts with its parent's
    # peak RSS, which would then be counted as the worker's
    logs = [tempfile.TemporaryFile() for _ in range(WORKERS)]  # noqa: SIM115 (closed below)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "invoicing", "worker", "--idle-seconds", "86400"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for log in logs
    ]
    store, _ = _imported(args, data, settings.table_prefix)
    queue = services.open_queue(settings)
    entries: list[dict[str, Any]] = []
    try:
        time.sleep(1)  # started and polling: warm workers, like the host's instances
        reset_peak_rss()
        cpu = _Cpu(args.azurite_pid, [w.pid for w in workers])
        started = time.perf_counter()
        summary = services.run_daily(store, settings, span=SPAN, queue=queue)
        while True:
            entries = services.ledger_entries(store)
            states = {e["state"] for e in entries}
            # done when no date is still started: completed, or incomplete naming a contract
            # whose message was poisoned (reported: the run is then not a fair comparison)
            if len(entries) >= len(summary.dispatched) and states <= {"completed", "incomplete"}:
                break
            for w, log in zip(workers, logs, strict=True):
                if w.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise SystemExit(f"a worker stopped before the run completed:\n{tail}")
            if time.perf_counter() - started > TIMEOUT:
                raise SystemExit(f"the queued run did not complete in {TIMEOUT} s: {states}")
            time.sleep(POLL)
        seconds = time.perf_counter() - started
        used = cpu.used()
    finally:
        rss = [peak_rss_mb()]
        for w in workers:
            w.terminate()
        for w in workers:
            _, _, usage = os.wait4(w.pid, 0)
            rss.append(usage.ru_maxrss / 1024)
        for log in logs:
            log.close()
    invoices = sum(e["invoices"] or 0 for e in entries)
    incomplete = sum(1 for e in entries if e["state"] != "completed")
    return {
        "seconds": seconds,
        "items": items,
        "invoices": invoices,
        "contracts_queued": summary.queued,
        "dispatch_seconds": round(summary.seconds, 3),
        "workers": WORKERS,
        "incomplete_dates": incomplete,
        **used,
        "peak_rss_mb_max": round(max(rss), 1),
    }


class _Cpu:
    """The CPU seconds used from now on by this process and ``pids`` (the workers), and by
    Azurite apart: with ``cores`` they bound what fan-out can gain here (a run that needs C
    CPU seconds cannot take less than C / cores, however many workers share it)."""

    def __init__(self, azurite: int | None, pids: list[int]) -> None:
        self.azurite, self.pids = azurite, pids
        self.start = self._ours(), cpu_seconds(azurite) if azurite else 0.0

    def _ours(self) -> float:
        return cpu_seconds() + sum(cpu_seconds(pid) for pid in self.pids)

    def used(self) -> dict[str, Any]:
        ours = self._ours() - self.start[0]
        emulator = (cpu_seconds(self.azurite) - self.start[1]) if self.azurite else None
        return {
            "cpu_seconds": round(ours, 1),
            "azurite_cpu_seconds": None if emulator is None else round(emulator, 1),
            "cores": os.cpu_count(),
        }


STAGES = {"P7": p7, "P7floor": p7_floor}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--workbook", type=Path, required=True)
    parser.add_argument("--connection", required=True, help="storage connection string")
    parser.add_argument("--prefix", default="bench", help="unused: each stage names its tables")
    parser.add_argument("--items", type=int, default=0, help="transactions (reported as is)")
    parser.add_argument("--repeat", type=int, default=1, help="unused: one timed run")
    parser.add_argument("--azurite-pid", type=int, help="Azurite's process (its CPU is reported)")
    args = parser.parse_args(argv)
    data = args.workbook.read_bytes()
    result = STAGES[args.stage](args, data)
    result["peak_rss_mb"] = round(max(peak_rss_mb(), result.pop("peak_rss_mb_max", 0)), 1)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
