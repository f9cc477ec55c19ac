"""One benchmark stage (or its floor) in a process of its own: ``python -m bench.stage NAME ...``.

Prints one JSON object on stdout: ``seconds`` (best of ``--repeat`` timed runs), ``items`` (the
workbook's transactions), ``peak_rss_mb`` and a few stage-specific counts. Each stage prepares its
input untimed (reading the workbook, planning, ...), then resets the process's peak-RSS mark
(``/proc/self/clear_refs``) so that ``peak_rss_mb`` is the peak *during the stage*, its input in
memory included, measured with ``getrusage(RUSAGE_SELF).ru_maxrss``.

Stages (SPEC P) and the floor measured beside each:

* ``P1`` ``read_workbook`` (upload gate + calamine + validation) of the workbook's bytes;
  ``P1floor``: ``CalamineWorkbook.from_filelike`` + ``to_python()`` of every sheet, same bytes.
* ``P2`` ``engine.plan_range`` over the 60-day range on the already-read portfolio (no floor).
* ``P3`` ``writer.invoice_workbook_bytes`` of P2's invoices and log (rows built inside the timing);
  ``P3floor``: openpyxl write-only of ``writer.plain_rows`` (the same rows and columns, unstyled,
  no tables), the rows built *before* the timing: the floor is serialisation only.
* ``P4`` ``services.import_workbook`` into an empty store; ``P4floor``: the same entities, built
  with the store's own codec (``codec.milestone_entity``/``transaction_entity``/``config_entities``,
  ``store.upsert_op``), upserted with ``submit_transaction`` in ``store.chunks`` batches per
  partition, one task per contract on as many threads as the import uses (with the work-table
  copies and the empty ``N:state`` the import writes, S8), then the registry, the transaction
  index and the due-date index (globals), partition by partition on those threads.
* ``P5`` ``services.run_daily`` over the 60 run dates on the store P4 filled; ``P5floor``: one
  scan of each contract's stored rows + one batched write of the invoice entities the run
  writes (index entries, invoice headers/lines/details, markers, run logs, each contract's
  ``N:state``, ledger), computed untimed with the engine and the store's codec, on the same
  threads, into the table ``P4floor`` filled. Not in the floor: the run's sweep of the work
  rows of the items it invoiced (S8's price for reading no history later).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.generate import RANGE_DAYS, RANGE_START

RUN_DATES = [RANGE_START + timedelta(days=i) for i in range(RANGE_DAYS)]
SPAN = (RUN_DATES[0], RUN_DATES[-1])
WORKERS = 4  # invoicing.services.DEFAULT_WORKERS, checked in _storage_workers


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The peak RSS since the last ``reset_peak_rss``: VmHWM, which that reset clears.
    ``ru_maxrss`` is never reset, and a child started by a large parent inherits its mark."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds a process has used so far (this one when ``pid`` is None):
    P7 reports what each side cost the machine, not only how long it took."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None  # free the previous result before timing, not inside the next run
        gc.collect()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


# ---- shared setup -------------------------------------------------------------------------------


def _read(data: bytes):
    from invoicing.workbook.reader import read_workbook

    return read_workbook(data).portfolio


def _transactions(portfolio) -> int:
    return sum(len(c.transactions) for c in portfolio.contracts)


def _plan(portfolio):
    from invoicing.engine import plan_range

    return plan_range(portfolio, RUN_DATES)


def _freeze() -> None:
    """A floor holds every entity it will write, prepared in advance (the stage builds them as it
    goes): move them out of the cyclic collector's reach, or its full collections over that heap
    would be part of the floor's time."""
    gc.collect()
    gc.freeze()


def _storage_workers() -> int:
    from invoicing.services import DEFAULT_WORKERS

    if DEFAULT_WORKERS != WORKERS:  # the floor must use the import's and the run's concurrency
        raise SystemExit(f"services.DEFAULT_WORKERS is {DEFAULT_WORKERS}; bench assumes {WORKERS}")
    return WORKERS


def _settings(args: argparse.Namespace):
    from invoicing.settings import Settings

    return Settings(storage_connection=args.connection, table_prefix=args.prefix, lease_seconds=60)


# ---- P1 -----------------------------------------------------------------------------------------


def p1(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from invoicing.workbook.reader import read_workbook

    seconds, read = best_of(args.repeat, lambda: read_workbook(data))
    return {"seconds": seconds, "items": _transactions(read.portfolio)}


def p1_floor(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from python_calamine import CalamineWorkbook

    def read() -> int:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        cells = 0
        for name in book.sheet_names:
            rows = book.get_sheet_by_name(name).to_python()
            cells += len(rows)
        return cells

    seconds, _ = best_of(args.repeat, read)
    return {"seconds": seconds}


# ---- P2 -----------------------------------------------------------------------------------------


def p2(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    portfolio = _read(data)
    reset_peak_rss()
    seconds, plan = best_of(args.repeat, lambda: _plan(portfolio))
    return {
        "seconds": seconds,
        "items": _transactions(portfolio),
        "invoices": len(plan.invoices),
        "log": len(plan.log),
    }


# ---- P3 -----------------------------------------------------------------------------------------


def p3(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from invoicing.workbook.writer import invoice_workbook_bytes

    portfolio = _read(data)
    plan = _plan(portfolio)
    items = _transactions(portfolio)
    del portfolio
    reset_peak_rss()
    seconds, out = best_of(args.repeat, lambda: invoice_workbook_bytes(plan.invoices, plan.log))
    return {"seconds": seconds, "items": items, "bytes": len(out)}


def p3_floor(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from openpyxl import Workbook

    from invoicing.workbook.writer import plain_rows

    portfolio = _read(data)
    plan = _plan(portfolio)
    del portfolio
    sheets = plain_rows(plan.invoices, plan.log)  # outside the timing: the floor only serialises
    del plan
    reset_peak_rss()

    def write() -> int:
        wb = Workbook(write_only=True)
        for name, rows in sheets.items():
            ws = wb.create_sheet(name)
            for row in rows:
                ws.append(row)
        buffer = io.BytesIO()
        wb.save(buffer)
        return len(buffer.getvalue())

    seconds, size = best_of(args.repeat, write)
    return {"seconds": seconds, "bytes": size}


# ---- P4 -----------------------------------------------------------------------------------------


def p4(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from invoicing.services import import_workbook, open_store

    settings = _settings(args)
    store = open_store(settings)  # creates the (empty) tables: not part of the import
    _storage_workers()
    reset_peak_rss()
    started = time.perf_counter()
    result = import_workbook(store, data, settings)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "items": result.sheets["Transactions"]["created"],
        "contracts": result.contracts,
    }


ContractOps = tuple[list[tuple], list[tuple], list[tuple]]  # main table, work table, N:state


def _import_ops(portfolio) -> tuple[list[ContractOps], list[tuple]]:
    """Per contract, the operations ``import_portfolio`` submits into an empty store (items in
    milestone-then-transaction order, its due-index state, the configuration last; the same
    items and configuration into the work table; then its empty ``N:state``), and the globals
    operations: the registry, the transaction index (W9) and the due-date index (S8)."""
    from invoicing.shares import ContractState
    from invoicing.storage import codec, due, rows, snapshot
    from invoicing.storage.keys import encode_key
    from invoicing.storage.ops import create_op
    from invoicing.storage.store import upsert_op

    per_contract: list[ContractOps] = []
    globals_ops: list[tuple] = []
    due_rows: dict[tuple[str, str], dict] = {}
    for order, contract in enumerate(portfolio.contracts):
        pk = encode_key(contract.contract_id)
        ops = [upsert_op(codec.milestone_entity(pk, m)) for m in contract.milestones]
        ops += [upsert_op(codec.transaction_entity(pk, t)) for t in contract.transactions]
        index = due.contract_index(contract)
        ops.append(upsert_op(due.state_entity(pk, index)))
        ops.extend(upsert_op(e) for e in codec.config_entities(pk, contract, order))
        # S8: the work table's copy of the items and configuration, then the empty state
        work = [op for op in ops if op[1]["RowKey"][:1] in ("T", "M", "C")]
        state = [create_op(snapshot.state_entity(pk, ContractState()))]
        per_contract.append((ops, work, state))
        globals_ops.append(upsert_op(rows.registry_entity(contract.contract_id, order)))
        globals_ops += [
            upsert_op(rows.txn_index_entity(t.transaction_id, contract.contract_id))
            for t in contract.transactions
        ]
        for e in due.index_entities(contract.contract_id, index):
            due_rows[(e["PartitionKey"], e["RowKey"])] = e
    globals_ops += [upsert_op(e) for e in due_rows.values()]
    return per_contract, globals_ops


def _tables(args: argparse.Namespace):
    from invoicing.services import open_store

    store = open_store(_settings(args))  # the same two tables, created like the store does
    return store.table, store.globals


def _work_table(args: argparse.Namespace):
    from invoicing.services import open_store

    return open_store(_settings(args)).work


def _submit_all(client, ops: list[tuple]) -> int:
    """Batched upserts, grouped per partition, chunked exactly like ``Store.submit``."""
    from invoicing.storage.store import chunks

    by_pk: dict[str, list[tuple]] = {}
    for op in ops:
        by_pk.setdefault(op[1]["PartitionKey"], []).append(op)
    batches = 0
    for pk_ops in by_pk.values():
        for chunk in chunks(pk_ops):
            client.submit_transaction(chunk)
            batches += 1
    return batches


def p4_floor(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    portfolio = _read(data)
    per_contract, registry = _import_ops(portfolio)
    items = _transactions(portfolio)
    del portfolio
    table, globals_ = _tables(args)
    work = _work_table(args)
    workers = _storage_workers()
    _freeze()
    reset_peak_rss()
    started = time.perf_counter()
    by_pk: dict[str, list[tuple]] = {}
    for op in registry:  # the registry and both indexes, partition by partition, in parallel
        by_pk.setdefault(op[1]["PartitionKey"], []).append(op)

    def contract(entry: ContractOps) -> int:
        ops, work_ops, state = entry
        return _submit_all(table, ops) + _submit_all(work, work_ops) + _submit_all(table, state)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        batches = sum(pool.map(contract, per_contract))
        batches += sum(pool.map(lambda ops: _submit_all(globals_, ops), list(by_pk.values())))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "items": items, "batches": batches}


# ---- P5 -----------------------------------------------------------------------------------------


def p5(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    from invoicing.services import open_store, run_daily

    settings = _settings(args)
    store = open_store(settings)
    _storage_workers()
    items = args.items
    reset_peak_rss()
    started = time.perf_counter()
    summary = run_daily(store, settings, span=SPAN)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "items": items, "invoices": summary.invoices}


def _run_ops(
    portfolio,
) -> tuple[list[tuple[str, list[tuple]]], list[tuple], list[list[tuple]], int]:
    """The entities ``run_daily`` writes for the 60 dates into a store holding the workbook:
    per contract its invoice rows, markers and run logs (in date order), and the globals (index
    entries, ledger). Built with the engine and the store's codec, as ``services`` builds them."""
    from invoicing import engine
    from invoicing.storage import codec, rows, snapshot
    from invoicing.storage.keys import encode_key
    from invoicing.storage.store import upsert_op

    plan = engine.plan_range(portfolio, RUN_DATES)
    invoices: dict[tuple[str, date], list] = {}
    logs: dict[tuple[str, date], list] = {}
    for inv in plan.invoices:
        invoices.setdefault((inv.contract_id, inv.invoice_date), []).append(inv)
    for entry in plan.log:
        logs.setdefault((entry.contract_id, entry.run_date), []).append(entry)
    per_contract: list[tuple[str, list[tuple]]] = []
    index: list[tuple] = []
    for contract in portfolio.contracts:
        cid = contract.contract_id
        pk = encode_key(cid)
        ops: list[tuple] = []
        ran: list[date] = []
        for run_date in RUN_DATES:
            key = (cid, run_date)
            if key not in invoices and key not in logs:
                continue  # a date with no due line writes nothing
            day_invoices, day_log = invoices.get(key, []), logs.get(key, [])
            log_entities = rows.log_entities(pk, run_date, day_log)
            entities: list[dict[str, Any]] = []
            for inv in day_invoices:
                entities.extend(codec.invoice_entities(pk, inv, codec.DRAFT))
                index.append(upsert_op(rows.index_entity(inv)))
            marker = rows.marker_entity(pk, run_date, day_invoices, day_log, len(log_entities))
            ops.extend(upsert_op(e) for e in (*entities, marker, *log_entities))
            ran.append(run_date)
        if ran:  # the contract's state after its commit (S8), in its last transaction
            state = plan.states[cid]
            ops.append(upsert_op(snapshot.state_entity(pk, state, ran)))
        per_contract.append((pk, ops))
    ledger = [
        [upsert_op(rows.ledger_started(d, "")) for d in RUN_DATES],
        [
            upsert_op(
                rows.ledger_finished(
                    d,
                    state="completed",
                    started="",
                    finished="",
                    contracts=len(portfolio.contracts),
                    counts={},
                    amounts={},
                )
            )
            for d in RUN_DATES
        ],
    ]
    return per_contract, index, ledger, len(plan.invoices)


def p5_floor(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    portfolio = _read(data)
    per_contract, index, ledger, invoices = _run_ops(portfolio)
    items = _transactions(portfolio)
    del portfolio
    table, globals_ = _tables(args)
    workers = _storage_workers()
    _freeze()
    reset_peak_rss()

    def one(entry: tuple[str, list[tuple]]) -> int:
        pk, ops = entry
        # the scan Store.load makes: the contract's partition below the run logs
        rows = list(
            table.query_entities(
                "PartitionKey eq @pk and RowKey lt @hi", parameters={"pk": pk, "hi": "X"}
            )
        )
        _submit_all(table, ops)
        return len(rows)

    started = time.perf_counter()
    _submit_all(globals_, ledger[0])  # the ledger entries, started then completed
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scanned = sum(pool.map(one, per_contract))
        # the index entries (partitioned by month): one batched write, on the same threads
        by_pk: dict[str, list[tuple]] = {}
        for op in index:
            by_pk.setdefault(op[1]["PartitionKey"], []).append(op)
        list(pool.map(lambda ops: _submit_all(globals_, ops), by_pk.values()))
    _submit_all(globals_, ledger[1])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "items": items, "invoices": invoices, "scanned": scanned}


STAGES: dict[str, Callable[[argparse.Namespace, bytes], dict[str, Any]]] = {
    "P1": p1,
    "P1floor": p1_floor,
    "P2": p2,
    "P3": p3,
    "P3floor": p3_floor,
    "P4": p4,
    "P4floor": p4_floor,
    "P5": p5,
    "P5floor": p5_floor,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--workbook", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--connection", help="storage connection string (P4, P5)")
    parser.add_argument("--prefix", default="bench", help="table prefix (P4, P5)")
    parser.add_argument("--items", type=int, default=0, help="transactions in the store (P5)")
    args = parser.parse_args(argv)
    data = args.workbook.read_bytes()
    reset_peak_rss()
    result = STAGES[args.stage](args, data)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
