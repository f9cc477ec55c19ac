"""Hostile review of S8's open-work design (``storage.snapshot``): every path that changes what a
contract has invoiced, crashes between its non-atomic steps, concurrent actors (queue workers run
without the blob lease, S9), stores from before the change and damaged rows.

Each test asserts what the product promises (nothing billed twice, nothing left unbilled, the
right amounts, or a named problem). The review found nine holes (an import crashed between its
two tables, a worker racing an import, a late sweep, an unfenced rebuild, Pending leftovers
hidden by a valid state, damaged ``ran`` lists crashing runs and audit, lost work rows, and a
fenced duplicate delivery poisoning its contract); each was fixed and its test now passes.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
import zlib
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from invoicing import services
from invoicing.model import DetailStatus, Status
from invoicing.services import runs
from invoicing.services.lifecycle import CREDIT_NOTES, settle_pending_number
from invoicing.settings import QUEUE
from invoicing.storage import snapshot
from invoicing.storage.errors import AlreadyCredited, StateChanged, WriteRefused
from invoicing.storage.store import Store
from tests.storage.portfolios import workbook
from tests.support.workbooks import HEADERS, Book

D = date.fromisoformat
CID = "C0"


# ---- helpers ------------------------------------------------------------------------------------


def _book(
    txns: list[tuple[str, str, str, Any, bool]],
    runs_of: dict[str, list[str]],
    *,
    customers: list[tuple[str, int]] = (("K1", 100),),  # type: ignore[assignment]
    nte: dict[str, Any] | None = None,
) -> Book:
    """Contract C0: one T&M line per key of ``runs_of`` with those explicit run dates (cut-off
    the day before), the customers (first = rounding), and ``txns`` as (id, line, date, amount,
    ready)."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    book["Contracts"].append([CID, "Contract", "USD", 30])
    for n, (cust, pct) in enumerate(customers):
        book["Customers"].append(
            [CID, cust, f"Customer {cust}", pct, None, "Yes" if n == 0 else "No"]
        )
    for line, days in runs_of.items():
        limit = (nte or {}).get(line)
        book["ContractLines"].append(
            [
                CID,
                line,
                f"Line {line}",
                "Time and material",
                None,
                limit,
                None,
                None,
                None,
                None,
                None,
            ]
        )
        for day in days:
            book["InvoiceSchedule"].append([CID, line, D(day), None])
    for tid, line, day, amount, ready in txns:
        book["Transactions"].append(
            [
                tid,
                CID,
                line,
                "Time",
                D(day),
                "w",
                None,
                None,
                None,
                amount,
                "Yes" if ready else "No",
            ]
        )
    return book


def _import(store: Store, settings, book: Book) -> None:
    services.import_workbook(store, workbook(book), settings, workers=1)


def _run(store: Store, settings, day: str) -> runs.RunSummary:
    summary = services.run_daily(store, settings, span=(D(day), D(day)), workers=1)
    return summary


def _net(store: Store) -> Counter[tuple[str, str]]:
    """(customer, SourceId) -> amount net of credit notes on live invoices (nonzero only)."""
    invoices, _ = services.list_invoices(store, workers=1)
    net: Counter[tuple[str, str]] = Counter()
    for inv in invoices:
        if inv.status is Status.CANCELLED:
            continue
        for line in inv.lines:
            for d in line.details:
                if inv.is_credit_note or d.status is DetailStatus.INVOICED:
                    net[(inv.customer_id, d.source_id)] += d.amount
    return Counter({k: v for k, v in net.items() if v})


def _live_count(store: Store) -> Counter[tuple[str, str]]:
    """(customer, SourceId) -> number of live invoice details holding it (credit notes apart)."""
    invoices, _ = services.list_invoices(store, workers=1)
    found: Counter[tuple[str, str]] = Counter()
    for inv in invoices:
        if inv.status is Status.CANCELLED or inv.is_credit_note:
            continue
        for line in inv.lines:
            for d in line.details:
                if d.status is DetailStatus.INVOICED:
                    found[(inv.customer_id, d.source_id)] += 1
    return found


def _invoice_of(store: Store, source_id: str, customer: str = "K1", day: str | None = None) -> str:
    invoices, _ = services.list_invoices(store, workers=1)
    for inv in invoices:
        if inv.status is Status.CANCELLED or inv.is_credit_note or inv.customer_id != customer:
            continue
        if day is not None and inv.invoice_date != D(day):
            continue
        if any(d.source_id == source_id for line in inv.lines for d in line.details):
            return inv.invoice_id
    raise AssertionError(f"{source_id} is on no live invoice of {customer}")


def _crash_at(store: Store, wanted: str, nth: int = 1) -> None:
    """The ``nth`` write labelled ``wanted`` raises (a crash before it)."""
    seen = [0]

    def hook(label: str) -> None:
        if label == wanted:
            seen[0] += 1
            if seen[0] == nth:
                store.write_hook = None
                raise WriteRefused(f"injected crash before {label}")

    store.write_hook = hook


def _valid(store: Store) -> bool:
    return snapshot.state_from(store.state_row(CID)) is not None


# ---- import: crash between the main-table write and the work-table write ------------------------

STEP = {"L": ["2020-01-02", "2020-01-06", "2020-01-09"]}
FIRST = [("A", "L", "2020-01-01", 10, True), ("O", "L", "2020-01-03", 5, False)]
# B is new, O becomes ready with another amount; A (invoiced on Jan 2) is unchanged
SECOND = [
    ("A", "L", "2020-01-01", 10, True),
    ("O", "L", "2020-01-03", 7, True),
    ("B", "L", "2020-01-04", 20, True),
]


def _import_crashed_before_its_work_rows(store: Store, settings) -> None:
    _import(store, settings, _book(FIRST, STEP))
    _run(store, settings, "2020-01-02")
    assert _valid(store)
    _crash_at(store, "import-work")
    with pytest.raises(WriteRefused):
        _import(store, settings, _book(SECOND, STEP))
    assert list(store.unfinished_imports()) == [CID]  # S5a: named, runs do not invoice it
    _import(store, settings, _book(SECOND, STEP))  # "importing again finishes it" (S5a)
    assert not store.unfinished_imports()


def test_a_reimport_after_a_crash_before_the_work_rows_bills_the_new_and_changed_items(
    store, storage_settings
):
    settings = storage_settings
    _import_crashed_before_its_work_rows(store, settings)
    summary = _run(store, settings, "2020-01-06")
    assert not summary.failed
    assert _net(store) == {
        ("K1", "A"): Decimal("10.00"),
        ("K1", "O"): Decimal("7.00"),
        ("K1", "B"): Decimal("20.00"),
    }


def test_an_import_crashed_before_its_work_rows_leaves_audit_clean(store, storage_settings):
    settings = storage_settings
    _import_crashed_before_its_work_rows(store, settings)
    summary = _run(store, settings, "2020-01-06")
    assert not summary.failed and not summary.blocked
    assert services.audit(store, settings) == []


# ---- import racing a queue worker (S9: workers run without the lease) ---------------------------


def test_a_worker_between_imports_main_and_work_writes_does_not_bill_the_old_amount(
    store, storage_settings
):
    settings = storage_settings
    _worker_between_imports_main_and_work_writes(store, settings)
    assert _net(store) == {("K1", "X"): Decimal("25.00")}


def test_a_worker_racing_an_import_leaves_audit_clean(store, storage_settings):
    settings = storage_settings
    _worker_between_imports_main_and_work_writes(store, settings)
    assert services.audit(store, settings) == []


def _worker_between_imports_main_and_work_writes(store: Store, settings) -> None:
    book = _book([("X", "L", "2020-01-01", 10, True)], {"L": ["2020-01-02"]})
    _import(store, settings, book)
    assert _valid(store)  # a brand-new contract gets a valid empty state
    changed = _book([("X", "L", "2020-01-01", 25, True)], {"L": ["2020-01-02"]})
    worker = services.open_store(settings)
    importer = services.open_store(settings)
    outcomes: list[runs.ContractsOutcome] = []

    def worker_runs_now(label: str) -> None:
        if label == "import-work" and not outcomes:
            outcomes.append(runs.invoice_contracts(worker, [CID], [D("2020-01-02")], workers=1))

    importer.write_hook = worker_runs_now
    _import(importer, settings, changed)  # the import itself succeeds: nothing is named
    importer.write_hook = None
    if outcomes[0].failed or outcomes[0].blocked:  # not now: the redelivery bills the new amount
        assert not runs.invoice_contracts(worker, [CID], [D("2020-01-02")], workers=1).failed


# ---- the sweep, late, after the item went back to the backlog ----------------------------------


def test_a_late_sweep_never_deletes_the_work_row_of_an_item_gone_back_to_the_backlog(
    store, storage_settings
):
    settings = storage_settings
    _late_sweep_after_a_cancel_and_another_commit(store, settings)
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "X"): Decimal("10.00")}  # the cancelled share went out again


def test_a_late_sweep_after_a_cancel_leaves_audit_clean(store, storage_settings):
    settings = storage_settings
    _late_sweep_after_a_cancel_and_another_commit(store, settings)
    summary = _run(store, settings, "2020-01-06")
    assert not summary.failed
    assert services.audit(store, settings) == []


def _late_sweep_after_a_cancel_and_another_commit(store: Store, settings) -> None:
    days = {"L": ["2020-01-02", "2020-01-06"]}
    _import(store, settings, _book([("X", "L", "2020-01-01", 10, True)], days))
    other = services.open_store(settings)
    done: list[str] = []

    def cancel_and_let_another_worker_commit(label: str) -> None:
        if label == "work-sweep" and not done:
            done.append(label)
            services.cancel(other, settings, _invoice_of(other, "X"))
            # a worker on a date the line is not due: full load, valid state, X open
            assert not runs.invoice_contracts(other, [CID], [D("2020-01-03")], workers=1).failed
            assert _valid(other)

    store.write_hook = cancel_and_let_another_worker_commit
    assert not runs.invoice_contracts(store, [CID], [D("2020-01-02")], workers=1).failed
    store.write_hook = None
    assert done


def test_a_stale_rebuild_of_a_failed_worker_never_overwrites_the_work_table(
    store, storage_settings
):
    settings = storage_settings
    _stale_rebuild_after_an_import_and_another_commit(store, settings)
    _run(store, settings, "2020-01-02")
    assert _net(store) == {("K1", "X"): Decimal("25.00")}


def test_a_refused_stale_rebuild_leaves_audit_clean(store, storage_settings):
    settings = storage_settings
    _stale_rebuild_after_an_import_and_another_commit(store, settings)
    assert services.audit(store, settings) == []
    summary = _run(store, settings, "2020-01-02")
    assert not summary.failed
    assert services.audit(store, settings) == []


def _stale_rebuild_after_an_import_and_another_commit(store: Store, settings) -> None:
    days = {"L": ["2020-01-02", "2020-01-06"]}
    _import(store, settings, _book([("X", "L", "2020-01-01", 10, True)], days))
    # a store from before S8: no state row, no work rows
    pk = store.state_row(CID)["PartitionKey"]  # type: ignore[index]
    store.delete_if_present(store.table, pk, snapshot.STATE_KEY, "old")
    for e in store.work_rows(CID):
        store.delete_if_present(store.work, e["PartitionKey"], e["RowKey"], "old")
    other = services.open_store(settings)
    done: list[str] = []

    def import_and_another_worker_meanwhile(label: str) -> None:
        if label == "work-rebuild" and not done:
            done.append(label)
            _import(other, settings, _book([("X", "L", "2020-01-01", 25, True)], days))
            assert not runs.invoice_contracts(other, [CID], [D("2020-01-03")], workers=1).failed
            assert _valid(other)

    store.write_hook = import_and_another_worker_meanwhile
    late = runs.invoice_contracts(store, [CID], [D("2020-01-03")], workers=1)
    store.write_hook = None
    assert done and not late.failed  # its rebuild was refused (ETags), then planned again


# ---- Pending leftovers of a large date, hidden by a valid state ---------------------------------

MANY = 100  # one date's rows then exceed one transaction: the Pending-header path


def _large_book(moved: bool) -> Book:
    """100 transactions of line L for Jan 2 (T099 moved to Jan 3, after its cut-off, when
    ``moved``: allowed while T099 is on a Pending invoice only) and M1 of line M for Jan 5."""
    txns = [(f"T{n:03d}", "L", "2020-01-01", 1, True) for n in range(MANY)]
    if moved:
        txns[-1] = ("T099", "L", "2020-01-03", 1, True)
    txns.append(("M1", "M", "2020-01-04", 50, True))
    return _book(txns, {"L": ["2020-01-02", "2020-01-09"], "M": ["2020-01-05", "2020-01-09"]})


def _large_date_crashed_then_another_date_run(store: Store, settings) -> None:
    _import(store, settings, _large_book(False))
    _crash_at(store, "commit")  # the final transaction of the large date
    with pytest.raises(WriteRefused):
        _run(store, settings, "2020-01-02")
    assert not _valid(store)  # fenced stale before the Pending rows
    _import(store, settings, _large_book(True))
    _run(store, settings, "2020-01-05")  # an operator's explicit run of a later date (line M)
    assert _valid(store)  # the full load wrote a valid state; the Pending rows of Jan 2 stay
    _run(store, settings, "2020-01-02")  # the crashed date, run again: the open-work path


def test_pending_leftovers_are_cleaned_when_a_valid_state_replans_their_date(
    store, storage_settings
):
    settings = storage_settings
    _large_date_crashed_then_another_date_run(store, settings)
    jan2 = _invoice_of(store, "T000", day="2020-01-02")
    details = [
        d.source_id for line in services.get_invoice(store, jan2).lines for d in line.details
    ]
    assert "T099" not in details  # dated after Jan 2's cut-off now
    _run(store, settings, "2020-01-09")
    live = _live_count(store)
    assert live[("K1", "T099")] == 1 and max(live.values()) == 1
    assert services.audit(store, settings) == []


def test_pending_leftovers_named_by_the_state_leave_audit_clean(store, storage_settings):
    settings = storage_settings
    _large_date_crashed_then_another_date_run(store, settings)
    summary = _run(store, settings, "2020-01-09")
    assert not summary.failed
    assert services.audit(store, settings) == []


def test_a_large_date_rerun_at_once_after_its_crash_is_exact(store, storage_settings):
    """Defence: the large date's crash left the state stale; re-run (full load) it cleans."""
    settings = storage_settings
    _import(store, settings, _large_book(False))
    _crash_at(store, "pending-rows")
    with pytest.raises(WriteRefused):
        _run(store, settings, "2020-01-02")
    _import(store, settings, _large_book(True))
    _run(store, settings, "2020-01-02")
    live = _live_count(store)
    assert len(live) == MANY - 1 and ("K1", "T099") not in live
    _run(store, settings, "2020-01-05")
    _run(store, settings, "2020-01-02")  # again: a no-op
    _run(store, settings, "2020-01-09")
    assert _valid(store)
    live = _live_count(store)
    assert len(live) == MANY + 1 and max(live.values()) == 1  # T099 on Jan 9, M1 on Jan 5
    assert services.audit(store, settings) == []


def test_a_large_date_on_a_store_from_before_the_change_and_a_cancel_mid_commit(
    store, storage_settings
):
    """Defence: no N:state row (the stale fence creates it), and a cancel between the fence
    and the final transaction refuses the commit; the next run is exact."""
    settings = storage_settings
    _import(store, settings, _large_book(False))
    _run(store, settings, "2020-01-05")  # M1 billed on Jan 5
    pk = store.state_row(CID)["PartitionKey"]  # type: ignore[index]
    store.delete_if_present(store.table, pk, snapshot.STATE_KEY, "old")
    other = services.open_store(settings)
    done: list[str] = []

    def cancel_mid_commit(label: str) -> None:
        if label == "pending-rows" and not done:
            done.append(label)
            services.cancel(other, settings, _invoice_of(other, "M1"))

    store.write_hook = cancel_mid_commit
    summary = _run(store, settings, "2020-01-02")
    store.write_hook = None
    assert done and not summary.failed  # refused whole, then planned again from the store
    _run(store, settings, "2020-01-02")
    _run(store, settings, "2020-01-09")
    live = _live_count(store)
    assert len(live) == MANY + 1 and max(live.values()) == 1  # M1 again on Jan 9? (line M)
    assert services.audit(store, settings) == []


# ---- damaged or older N:state rows ------------------------------------------------------------


def _state_doc_without(store: Store, key: str, value: Any = None) -> None:
    """Rewrite C0's valid N:state with ``key`` removed (``value`` None) or replaced: what
    commit 807c034 wrote (no "ran"), or a damaged row."""
    row = store.state_row(CID)
    assert row is not None and row["Valid"] is True
    blob = b"".join(bytes(row[f"S{n}"]) for n in range(int(row["Parts"])))
    doc = json.loads(zlib.decompress(blob))
    if value is None:
        doc.pop(key)
    else:
        doc[key] = value
    blob = zlib.compress(json.dumps(doc).encode())
    entity = {k: v for k, v in row.items() if not k.startswith("_") and not k.startswith("S")}
    entity.update({"Parts": 1, "S0": blob, "PartitionKey": row["PartitionKey"]})
    store.upsert(store.table, entity)


def _two_dates_store(store: Store, settings) -> None:
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True), ("B", "L", "2020-01-03", 20, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    assert _valid(store)


@pytest.mark.parametrize(
    "value", [None, ["2020-13-45"], "2020-01-02"], ids=["no-ran", "bad-date", "not-a-list"]
)
def test_a_state_row_with_a_damaged_ran_list_is_loaded_in_full(store, storage_settings, value):
    settings = storage_settings
    _two_dates_store(store, settings)
    _state_doc_without(store, "ran", value)
    summary = _run(store, settings, "2020-01-06")
    assert not summary.failed, summary.failed
    assert _net(store) == {("K1", "A"): Decimal("10.00"), ("K1", "B"): Decimal("20.00")}


def test_audit_names_a_state_row_without_its_ran_list(store, storage_settings):
    settings = storage_settings
    _two_dates_store(store, settings)
    _state_doc_without(store, "ran")
    found = services.audit(store, settings)
    assert any(CID in f for f in found), found


def test_a_state_row_whose_invoiced_list_is_garbage_is_loaded_in_full(store, storage_settings):
    """Defence: ``state_from`` refuses a damaged document; the run loads the contract in full."""
    settings = storage_settings
    _two_dates_store(store, settings)
    row = store.state_row(CID)
    assert row is not None
    store.upsert(
        store.table, {**{k: v for k, v in row.items() if not k.startswith("_")}, "S0": b"not zlib"}
    )
    summary = _run(store, settings, "2020-01-06")
    assert not summary.failed
    assert _net(store) == {("K1", "A"): Decimal("10.00"), ("K1", "B"): Decimal("20.00")}
    assert _valid(store) and services.audit(store, settings) == []


# ---- defences ----------------------------------------------------------------------------------


def test_a_store_from_before_the_change_is_loaded_in_full_then_read_open(store, storage_settings):
    """No N:state rows and no work rows (a store from before S8's change)."""
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06", "2020-01-09"]}
    txns = [
        ("A", "L", "2020-01-01", 10, True),
        ("B", "L", "2020-01-03", 20, True),
        ("C", "L", "2020-01-07", 30, True),
    ]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    pk = store.state_row(CID)["PartitionKey"]  # type: ignore[index]
    store.delete_if_present(store.table, pk, snapshot.STATE_KEY, "old")
    for e in store.work_rows(CID):
        store.delete_if_present(store.work, e["PartitionKey"], e["RowKey"], "old")
    _run(store, settings, "2020-01-06")  # full load, rebuilds the work partition
    assert _valid(store)
    _run(store, settings, "2020-01-06")  # a no-op
    _run(store, settings, "2020-01-09")  # the open-work path
    assert _net(store) == {
        ("K1", "A"): Decimal("10.00"),
        ("K1", "B"): Decimal("20.00"),
        ("K1", "C"): Decimal("30.00"),
    }
    assert max(_live_count(store).values()) == 1
    assert services.audit(store, settings) == []


def test_split_shares_partly_cancelled_go_out_again_only_for_the_cancelled_customer(
    store, storage_settings
):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", "10.01", True)]
    _import(store, settings, _book(txns, days, customers=[("K1", 60), ("K2", 40)]))
    _run(store, settings, "2020-01-02")
    services.cancel(store, settings, _invoice_of(store, "A", "K2"))
    assert not _valid(store)
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "A"): Decimal("6.01"), ("K2", "A"): Decimal("4.00")}
    assert max(_live_count(store).values()) == 1
    assert _valid(store)
    assert not [e for e in store.work_rows(CID) if e.get("Id") == "A"]  # swept
    assert services.audit(store, settings) == []


def test_credits_with_and_without_write_off_and_an_adjust_to_empty(store, storage_settings):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06", "2020-01-09"], "M": ["2020-01-02", "2020-01-09"]}
    txns = [
        ("A", "L", "2020-01-01", 10, True),
        ("B", "L", "2020-01-01", 20, True),
        ("C", "L", "2020-01-01", 30, True),
        ("E", "M", "2020-01-01", 40, True),
    ]
    _import(store, settings, _book(txns, days, customers=[("K1", 100)]))
    _run(store, settings, "2020-01-02")
    inv = _invoice_of(store, "A")
    services.confirm(store, settings, inv)
    services.credit(store, settings, inv, ["A"], False)  # back to the backlog
    _run(store, settings, "2020-01-06")
    services.credit(store, settings, inv, ["B"], True)  # written off
    second = _invoice_of(store, "A", day="2020-01-06")  # A again, on Jan 6
    services.adjust(store, settings, second, ["A"], [])  # emptied: cancelled, A back again
    _run(store, settings, "2020-01-09")
    net = _net(store)
    assert net == {
        ("K1", "A"): Decimal("10.00"),
        ("K1", "C"): Decimal("30.00"),
        ("K1", "E"): Decimal("40.00"),
    }
    assert services.audit(store, settings) == []


def test_a_not_to_exceed_added_by_import_counts_what_was_invoiced_before(store, storage_settings):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [
        ("A", "L", "2020-01-01", 100, True),
        ("B", "L", "2020-01-03", 60, True),
        ("C", "L", "2020-01-04", 40, True),
    ]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    _import(store, settings, _book(txns, days, nte={"L": 150}))
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "A"): Decimal("100.00"), ("K1", "C"): Decimal("40.00")}
    assert services.audit(store, settings) == []


def test_two_workers_on_one_contract_and_a_duplicate_message_bill_once(store, storage_settings):
    settings = storage_settings
    days = {"L": ["2020-01-02"]}
    _import(store, settings, _book([("A", "L", "2020-01-01", 10, True)], days))
    other = services.open_store(settings)
    done: list[runs.ContractsOutcome] = []

    def the_other_worker_commits_first(label: str) -> None:
        if label == "commit" and not done:
            done.append(runs.invoice_contracts(other, [CID], [D("2020-01-02")], workers=1))

    store.write_hook = the_other_worker_commits_first
    first = runs.invoice_contracts(store, [CID], [D("2020-01-02")], workers=1)
    store.write_hook = None
    # the fenced commit was refused whole and the contract planned again at once: the first
    # worker's date was committed by then, so nothing is written twice
    assert not done[0].failed and not first.failed
    again = runs.invoice_contracts(store, [CID], [D("2020-01-02")], workers=1)  # redelivery
    assert not again.failed and again.markers[CID]
    assert _live_count(store) == {("K1", "A"): 1}
    assert services.audit(store, settings) == []


def test_a_state_too_large_to_keep_always_loads_in_full(store, storage_settings, monkeypatch):
    monkeypatch.setattr(snapshot, "MAX_BYTES", 10)
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True), ("B", "L", "2020-01-03", 20, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    assert not _valid(store)
    _run(store, settings, "2020-01-06")
    _run(store, settings, "2020-01-06")
    assert _live_count(store) == {("K1", "A"): 1, ("K1", "B"): 1}
    assert services.audit(store, settings) == []


def test_a_credit_interrupted_before_its_number_is_stamped_then_settled(store, storage_settings):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06", "2020-01-09"]}
    _import(store, settings, _book([("A", "L", "2020-01-01", 10, True)], days))
    _run(store, settings, "2020-01-02")
    inv = _invoice_of(store, "A")
    services.confirm(store, settings, inv)
    _crash_at(store, "confirm-stamp")
    with pytest.raises(WriteRefused):
        services.credit(store, settings, inv, None, False)
    assert _valid(store)  # the credit note is not live yet: A is still invoiced
    _run(store, settings, "2020-01-06")
    assert _live_count(store) == {("K1", "A"): 1}
    settle_pending_number(store, settings, CREDIT_NOTES)  # as the next confirm or audit does
    assert not _valid(store)  # the credit note became live: stale with it
    with pytest.raises(AlreadyCredited):
        services.credit(store, settings, inv, None, False)  # finishes the recorded credit
    _run(store, settings, "2020-01-09")
    assert _net(store) == {("K1", "A"): Decimal("10.00")}  # billed again once, on Jan 9
    assert services.audit(store, settings) == []


def test_milestones_made_ready_by_import_go_out_through_the_open_work_path(store, storage_settings):
    settings = storage_settings
    book: Book = _book([], {})
    book["ContractLines"].append(
        [CID, "F", "Fixed", "Fixed price", None, None, None, None, None, None, None]
    )
    book["Milestones"].append([CID, "F", "M1", "One", D("2020-01-02"), 100, "No"])
    book["Milestones"].append([CID, "F", "M2", "Two", D("2020-01-06"), 50, "Yes"])
    _import(store, settings, book)
    _run(store, settings, "2020-01-02")  # M1 not ready: the line is skipped
    assert _valid(store)
    book["Milestones"][1][-1] = "Yes"
    _import(store, settings, book)  # touches the state, copies M1 to the work table
    assert _valid(store)
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "M1"): Decimal("100.00"), ("K1", "M2"): Decimal("50.00")}
    services.cancel(store, settings, _invoice_of(store, "M2"))
    book["Milestones"].append([CID, "F", "M3", "Three", D("2020-01-09"), 10, "Yes"])
    _import(store, settings, book)
    _run(store, settings, "2020-01-09")
    assert _net(store) == {
        ("K1", "M1"): Decimal("100.00"),
        ("K1", "M2"): Decimal("50.00"),
        ("K1", "M3"): Decimal("10.00"),
    }
    assert services.audit(store, settings) == []


def test_cancelled_shares_of_an_item_changed_since_are_split_afresh_on_the_open_work_path(
    store, storage_settings
):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-09"], "M": ["2020-01-06"]}
    txns = [("A", "L", "2020-01-01", "10.01", True), ("Z", "M", "2020-01-05", 1, True)]
    split = [("K1", 60), ("K2", 40)]
    _import(store, settings, _book(txns, days, customers=split))
    _run(store, settings, "2020-01-02")
    services.cancel(store, settings, _invoice_of(store, "A", "K1"))
    services.cancel(store, settings, _invoice_of(store, "A", "K2"))
    _run(store, settings, "2020-01-06")  # line M: a full load writes a valid state (A open)
    assert _valid(store)
    txns[0] = ("A", "L", "2020-01-01", 20, True)
    _import(store, settings, _book(txns, days, customers=split))  # allowed: A is on no live one
    assert _valid(store)
    _run(store, settings, "2020-01-09")
    net = _net(store)
    assert net[("K1", "A")] == Decimal("12.00") and net[("K2", "A")] == Decimal("8.00")
    assert services.audit(store, settings) == []


@pytest.mark.parametrize("label", ["import-work", "import-state"])
def test_a_new_contracts_import_crashed_before_its_state_is_loaded_in_full(
    store, storage_settings, label
):
    settings = storage_settings
    days = {"L": ["2020-01-02"]}
    book = _book([("A", "L", "2020-01-01", 10, True)], days)
    _crash_at(store, label)
    with pytest.raises(WriteRefused):
        _import(store, settings, book)
    assert store.state_row(CID) is None
    _import(store, settings, book)
    _run(store, settings, "2020-01-02")
    assert _net(store) == {("K1", "A"): Decimal("10.00")}
    assert _valid(store) and services.audit(store, settings) == []


def test_a_configuration_import_crashed_before_its_work_rows_leaves_the_state_stale(
    store, storage_settings
):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True), ("B", "L", "2020-01-03", 20, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    more = [*txns, ("C", "L", "2020-01-04", 5, True)]
    _crash_at(store, "import-work")
    with pytest.raises(WriteRefused):
        _import(store, settings, _book(more, days, customers=[("K1", 50), ("K2", 50)]))
    assert not _valid(store)
    _import(store, settings, _book(more, days, customers=[("K1", 50), ("K2", 50)]))
    _run(store, settings, "2020-01-06")
    assert _net(store) == {
        ("K1", "A"): Decimal("10.00"),
        ("K1", "B"): Decimal("10.00"),
        ("K2", "B"): Decimal("10.00"),
        ("K1", "C"): Decimal("2.50"),
        ("K2", "C"): Decimal("2.50"),
    }
    assert services.audit(store, settings) == []


def test_a_valid_state_without_its_work_partition_falls_back_to_the_full_load(
    store, storage_settings
):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True), ("B", "L", "2020-01-03", 20, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    for e in store.work_rows(CID):  # e.g. the work table dropped or restored from a backup
        store.delete_if_present(store.work, e["PartitionKey"], e["RowKey"], "lost")
    _import(store, settings, _book(txns, days))  # what the run's warning advises
    summary = _run(store, settings, "2020-01-06")
    assert not summary.blocked and not summary.failed
    assert _net(store) == {("K1", "A"): Decimal("10.00"), ("K1", "B"): Decimal("20.00")}


def test_a_cancel_between_an_imports_read_and_its_write_refuses_the_import(store, storage_settings):
    """Defence (with a misleading message: StateChanged says "the next run invoices it",
    while it is the import that must be run again)."""
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    other = services.open_store(settings)
    more = [*txns, ("B", "L", "2020-01-03", 20, True)]
    done: list[str] = []

    def cancel_meanwhile(label: str) -> None:
        if label == "import-begin" and not done:
            done.append(label)
            services.cancel(other, settings, _invoice_of(other, "A"))

    store.write_hook = cancel_meanwhile
    with pytest.raises(StateChanged):
        _import(store, settings, _book(more, days))
    store.write_hook = None
    assert list(store.unfinished_imports()) == [CID]  # named until imported again
    assert services.health_report(store)["unfinished_imports"] == [CID]
    _import(store, settings, _book(more, days))
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "A"): Decimal("10.00"), ("K1", "B"): Decimal("20.00")}
    assert services.audit(store, settings) == []


def test_a_duplicate_delivery_fenced_by_the_first_does_not_poison_its_contract(
    store, storage_settings
):
    settings = dataclasses.replace(
        storage_settings, dispatch=QUEUE, queue_name="q" + uuid.uuid4().hex[:12]
    )
    days = {"L": ["2020-01-02"]}
    _import(store, settings, _book([("A", "L", "2020-01-01", 10, True)], days))
    queue = services.open_queue(settings)
    services.run_daily(store, settings, span=(D("2020-01-02"), D("2020-01-02")), queue=queue)
    (delivery,) = queue.receive(60, max_messages=32)
    other = services.open_store(settings)
    done: list[object] = []

    def the_first_delivery_commits_meanwhile(label: str) -> None:
        if label == "commit" and not done:
            done.append(services.process_message(other, settings, delivery.body, 1))

    store.write_hook = the_first_delivery_commits_meanwhile
    # the duplicate, on its last allowed delivery: fenced, planned again, nothing to do
    services.process_message(store, settings, delivery.body, 5, max_dequeue_count=5)
    store.write_hook = None
    assert done and _live_count(store) == {("K1", "A"): 1}
    entries = services.ledger_entries(store)
    assert [e["state"] for e in entries] == ["completed"], entries


def test_a_crash_between_the_packs_of_a_multi_transaction_commit(store, storage_settings):
    """Defence: 40 small dates need two packed transactions; a crash before the second leaves
    the first committed and the state stale (fenced first); the rerun is exact."""
    settings = storage_settings
    days = [date(2020, 1, 2) + timedelta(days=n) for n in range(40)]
    runs_of = {"L": [d.isoformat() for d in days]}
    txns = [(f"T{n:02d}", "L", days[n].isoformat(), 1, True) for n in range(40)]
    _import(store, settings, _book(txns, runs_of))
    span = (days[0], days[-1])
    _crash_at(store, "commit", nth=2)
    with pytest.raises(WriteRefused):
        services.run_daily(store, settings, span=span, workers=1)
    assert not _valid(store)
    first_pack = len(_live_count(store))
    assert 0 < first_pack < 39
    services.run_daily(store, settings, span=span, workers=1)
    live = _live_count(store)
    assert len(live) == 39 and max(live.values()) == 1  # T39 waits for a later run date
    assert _valid(store)
    services.run_daily(store, settings, span=span, workers=1)  # a no-op, on the open work
    assert _live_count(store) == live
    assert services.audit(store, settings) == []


def test_a_share_written_off_on_a_draft_cancelled_later_stays_closed(store, storage_settings):
    settings = storage_settings
    days = {"L": ["2020-01-02", "2020-01-06"]}
    txns = [("A", "L", "2020-01-01", 10, True), ("B", "L", "2020-01-01", 20, True)]
    _import(store, settings, _book(txns, days))
    _run(store, settings, "2020-01-02")
    inv = _invoice_of(store, "A")
    services.adjust(store, settings, inv, [], ["A"], "not billable")
    services.cancel(store, settings, inv)
    _run(store, settings, "2020-01-06")
    assert _net(store) == {("K1", "B"): Decimal("20.00")}
    assert not [e for e in store.work_rows(CID) if e.get("Id") in ("A", "B")]
    assert services.audit(store, settings) == []
