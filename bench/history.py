"""P6 (SPEC P, S8): one run date on a store holding a year of daily history, against the same
date on a store holding only its open work: ``python -m bench.history --connection C``.

Both stores live in the same Azurite (separate tables), so what the emulator does with a large
data folder weighs on both alike and the ratio measures what our run reads and writes.

* The year: the §P contracts and lines (no not-to-exceed, so the two stores have the same work),
  their transactions spread over 2024; imported, then ``run_daily`` over the 365 dates
  2024-01-01 .. 2024-12-30 (365 completed dates in the ledger). Untimed.
* The open-work store: the same contracts with only the transactions still open after those 365
  dates (computed with the engine: what is not invoiced, or has a share to go out again),
  imported into fresh tables. Untimed.
* Timed: ``run_daily`` of 2024-12-31 on the open-work store (the floor), then on the year store
  (the stage), each in a process of its own, after an untimed warm-up process that reads both
  stores' ledgers (the first process to run pays for a cold start: measured, ~0.45 s on a
  4.3 s run, which would otherwise fall on the floor). Each prints its counts; the invoices of
  both must be the same number.

Prints one JSON object: ``seconds``, ``floor_seconds``, ``items`` (the year's transactions),
``invoices``, ``reads``/``floor_reads`` (entities the run read), ``requests``/``floor_requests``
(queries and point reads sent), ``peak_rss_mb`` and
``floor_peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.stage import peak_rss_mb, reset_peak_rss

ROOT = Path(__file__).resolve().parents[1]

YEAR_START = date(2024, 1, 1)
HISTORY = [YEAR_START + timedelta(days=n) for n in range(365)]  # 2024-01-01 .. 2024-12-30
DAY = HISTORY[-1] + timedelta(days=1)  # 2024-12-31: month end, a Tuesday


def _settings(connection: str, prefix: str):
    from invoicing.settings import Settings

    return Settings(storage_connection=connection, table_prefix=prefix, lease_seconds=60)


def _open_portfolio(portfolio):
    """The portfolio with only the transactions still open after the 365 history dates."""
    from invoicing import engine
    from invoicing.model import SourceType
    from invoicing.storage.snapshot import is_open

    plan = engine.plan_range(portfolio, HISTORY)
    contracts = []
    for contract in portfolio.contracts:
        state = plan.states.get(contract.contract_id)
        kept = tuple(
            t
            for t in contract.transactions
            if state is None or is_open((SourceType.TRANSACTION, t.transaction_id), state)
        )
        contracts.append(dataclasses.replace(contract, transactions=kept))
    return dataclasses.replace(portfolio, contracts=tuple(contracts))


def _timed_run(store, settings) -> tuple[float, Any, int, float]:
    from invoicing.services import run_daily

    reads = store.reads
    reset_peak_rss()
    started = time.perf_counter()
    summary = run_daily(store, settings, span=(DAY, DAY))
    seconds = time.perf_counter() - started
    return seconds, summary, store.reads - reads, peak_rss_mb()


def measure(connection: str, scale: float) -> dict[str, Any]:
    from bench.generate import generate_workbook
    from invoicing.services import import_portfolio, open_store, run_daily
    from invoicing.workbook.reader import read_workbook

    with tempfile.TemporaryDirectory(prefix="bench-p6-") as tmp:
        path = Path(tmp) / "year.xlsx"
        generate_workbook(path, scale, start=YEAR_START, days=366, lead=0, limits=False)
        portfolio = read_workbook(path.read_bytes()).portfolio
    items = sum(len(c.transactions) for c in portfolio.contracts)
    year_settings, open_settings = _settings(connection, "year"), _settings(connection, "open")
    year, fresh = open_store(year_settings), open_store(open_settings)
    started = time.perf_counter()
    import_portfolio(year, portfolio, year_settings)
    history = run_daily(year, year_settings, span=(HISTORY[0], HISTORY[-1]))
    history_invoices = history.invoices
    opened = _open_portfolio(portfolio)
    open_items = sum(len(c.transactions) for c in opened.contracts)
    import_portfolio(fresh, opened, open_settings)
    del portfolio, opened
    print(
        f"P6 setup: {items:,} transactions, {history_invoices:,} invoices over 365 dates, "
        f"{open_items:,} still open; {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    del year, fresh, history
    # each timed run in a process of its own: this one still holds the year's heap (its peak
    # RSS would be the setup's), and neither run warms the other's client
    _child(connection, "--warm")
    floor = _timed_child(connection, "open")
    stage = _timed_child(connection, "year")
    if stage["invoices"] != floor["invoices"] or stage["amounts"] != floor["amounts"]:
        raise SystemExit(
            f"P6: the year store invoiced {stage['invoices']} ({stage['amounts']}) on {DAY} but "
            f"the open-work store {floor['invoices']} ({floor['amounts']}): not the same work"
        )
    return {
        "seconds": stage["seconds"],
        "floor_seconds": floor["seconds"],
        "items": items,
        "open_items": open_items,
        "invoices": stage["invoices"],
        "history_invoices": history_invoices,
        "reads": stage["reads"],
        "floor_reads": floor["reads"],
        "requests": stage["requests"],
        "floor_requests": floor["requests"],
        "peak_rss_mb": stage["peak_rss_mb"],
        "floor_peak_rss_mb": floor["peak_rss_mb"],
    }


def _timed_child(connection: str, prefix: str) -> dict[str, Any]:
    return _child(connection, "--timed", prefix)


def _child(connection: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.history", "--connection", connection, *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"P6 child {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm(connection: str) -> dict[str, Any]:
    """Untimed: what the first process pays (imports, the client, the emulator's first
    requests), reading only: both stores' ledgers and the due contracts of DAY."""
    from invoicing.services import open_store

    rows = 0
    for prefix in ("open", "year"):
        store = open_store(_settings(connection, prefix))
        rows += len(store.ledger()) + len(store.due_contracts([DAY]))
    return {"rows": rows}


def timed(connection: str, prefix: str) -> dict[str, Any]:
    """The run of DAY on the store ``prefix`` ("year" or "open"), from a fresh process."""
    from invoicing.services import open_store

    settings = _settings(connection, prefix)
    store = open_store(settings)
    requests = store.queries
    seconds, summary, reads, rss = _timed_run(store, settings)
    return {
        "seconds": seconds,
        "invoices": summary.invoices,
        "amounts": {c: str(a) for c, a in sorted(summary.amounts.items())},
        "reads": reads,
        "requests": store.queries - requests,
        "peak_rss_mb": round(rss, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history")
    parser.add_argument("--connection", required=True, help="storage connection string")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--timed", choices=["year", "open"], help="only the timed run of DAY")
    parser.add_argument("--warm", action="store_true", help="only the untimed warm-up")
    args = parser.parse_args(argv)
    if args.warm:
        json.dump(warm(args.connection), sys.stdout)
    elif args.timed:
        json.dump(timed(args.connection, args.timed), sys.stdout)
    else:
        json.dump(measure(args.connection, args.scale), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
