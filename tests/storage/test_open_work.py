"""S8: a run reads a contract's open work and state, never its history (``storage.snapshot``);
the state is fenced so that nothing that changes a contract meanwhile is lost or billed twice."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.model import SourceType
from invoicing.services import runs
from invoicing.storage import snapshot
from invoicing.storage.errors import StateChanged
from invoicing.storage.store import Store
from tests.storage.portfolios import workbook
from tests.support.workbooks import daily_book

D = date.fromisoformat
YEAR = [D("2020-01-01") + timedelta(days=n) for n in range(366)]
LAST = YEAR[-1]


def _other_store(settings, name: str) -> tuple[Store, object]:
    other = dataclasses.replace(settings, table_prefix=settings.table_prefix[:20] + name)
    store = services.open_store(other)
    return store, other


def _run_cost(store: Store, settings, day: date) -> tuple[int, int]:
    """(entities read, requests sent) by a run of ``day``, less the ledger rows it reads."""
    reads, queries = store.reads, store.queries
    summary = services.run_daily(store, settings, span=(day, day))
    assert summary.invoices == 3 and not summary.failed
    cost = store.reads - reads, store.queries - queries
    ledger_rows = len(store.ledger()) - 1  # the entry of ``day`` itself was not there before
    return cost[0] - ledger_rows, cost[1]


def test_a_run_after_a_year_of_history_reads_what_a_store_of_only_its_open_work_reads(
    store, storage_settings
):
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(3, YEAR)), settings)
    summary = services.run_daily(store, settings, span=(YEAR[0], YEAR[-2]))
    assert summary.invoices == 3 * 364  # a daily line bills the days before its run date
    history = _run_cost(store, settings, LAST)

    # the same date's open work alone: the transactions of Dec 30 (due) and Dec 31 (not yet)
    fresh_store, fresh_settings = _other_store(settings, "fresh")
    services.import_workbook(fresh_store, workbook(daily_book(3, YEAR[-2:])), fresh_settings)
    fresh = _run_cost(fresh_store, fresh_settings, LAST)

    # the same rows and requests: none of the 365 invoices, markers and invoiced transactions
    # per contract are read (the history store holds ~1,500 rows per contract)
    assert history[0] <= fresh[0] * 1.25, (history, fresh)
    assert history[1] <= fresh[1] * 1.25, (history, fresh)
    assert services.audit(store, settings) == []


def test_the_work_table_keeps_only_open_items_after_each_run(store, storage_settings):
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(2, YEAR[:10])), settings)
    services.run_daily(store, settings, span=(YEAR[0], YEAR[4]))
    for cid in ("C0", "C1"):
        items = sorted(e["Id"] for e in store.work_rows(cid) if e["RowKey"].startswith("T:"))
        assert items == [f"{cid}-01{d:02d}" for d in range(5, 11)]  # Jan 1-4 were invoiced
        state = snapshot.state_from(store.state_row(cid))
        assert state is not None and len(state.invoiced) == 4
    assert services.audit(store, settings) == []


def test_a_cancel_between_a_run_planning_and_committing_is_not_lost(store, storage_settings):
    """The run planned Jan 3 while Jan 2's draft was live; the draft is cancelled before
    the commit. Unfenced, the commit would write a state saying its item is invoiced, and the
    cancelled share would never go out again."""
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(1, YEAR[:2])), settings)
    services.run_daily(store, settings, span=(YEAR[1], YEAR[1]))
    (first,), _ = services.list_invoices(store)
    canceller = services.open_store(settings)
    done: list[str] = []

    def cancel_before_commit(label: str) -> None:
        if label == "commit" and not done:
            done.append(label)
            services.cancel(canceller, settings, first.invoice_id)

    commits: list[str] = []
    store.write_hook = lambda label: (commits.append(label), cancel_before_commit(label))
    summary = services.run_daily(store, settings, span=(YEAR[2], YEAR[2]))
    store.write_hook = None
    # the fenced commit was refused whole; the contract was planned again at once, from the
    # full partition (the cancel had made its state stale)
    assert not summary.failed and summary.invoices == 1
    assert commits.count("commit") == 2 and "state-stale" in commits
    invoices, _ = services.list_invoices(store)
    live = sorted(
        d.source_id for inv in invoices if inv.status.value == "Draft"
        for line in inv.lines for d in line.details
    )
    assert live == ["C0-0101", "C0-0102"]  # the cancelled share went out again on Jan 3
    assert services.audit(store, settings) == []


def test_an_import_while_a_worker_plans_a_contract_refuses_the_workers_commit(
    store, storage_settings
):
    """S9: a queue worker runs without the blob lease; an import of the same contract between
    its load and its commit changes the state row's ETag, so the commit lands not at all."""
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(1, YEAR[:1])), settings)
    changed = daily_book(1, YEAR[:1])
    changed["Transactions"][1][9] = 25  # the one transaction, before it is invoiced
    importer = services.open_store(settings)
    done: list[str] = []

    def import_before_commit(label: str) -> None:
        if label == "commit" and not done:
            done.append(label)
            services.import_workbook(importer, workbook(changed), settings)

    labels: list[str] = []
    store.write_hook = lambda label: (labels.append(label), import_before_commit(label))
    outcome = runs.invoice_contracts(store, ["C0"], [YEAR[1]], workers=1)
    store.write_hook = None
    # the first commit (planned with the amount 10) was refused; the retry read the import
    assert not outcome.failed and labels.count("commit") == 2
    (invoice,), _ = services.list_invoices(store)
    assert invoice.amount == Decimal("25.00")


def test_an_import_of_a_contract_invoiced_since_it_was_read_is_refused(store, storage_settings):
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(1, YEAR[:1])), settings)
    changed = daily_book(1, YEAR[:2])  # a second transaction: the contract's items change
    worker = services.open_store(settings)
    done: list[str] = []

    def invoice_before_the_import_writes(label: str) -> None:
        if label == "import-begin" and not done:
            done.append(label)
            assert not runs.invoice_contracts(worker, ["C0"], [YEAR[1]], workers=1).failed

    store.write_hook = invoice_before_the_import_writes
    with pytest.raises(StateChanged, match="C0"):
        services.import_workbook(store, workbook(changed), settings)
    store.write_hook = None
    # the contract stays marked Importing (S5a) until its workbook is imported again
    assert list(store.unfinished_imports()) == ["C0"]
    services.import_workbook(store, workbook(changed), settings)
    services.run_daily(store, settings, span=(YEAR[2], YEAR[2]))
    invoices, _ = services.list_invoices(store)
    assert sorted(d.source_id for i in invoices for line in i.lines for d in line.details) == [
        "C0-0101",
        "C0-0102",
    ]
    assert services.audit(store, settings) == []


def test_cancel_adjust_and_a_credit_note_make_the_state_stale_with_their_change(
    store, storage_settings
):
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(3, YEAR[:3])), settings)
    services.run_daily(store, settings, span=(YEAR[1], YEAR[1]))
    invoices, _ = services.list_invoices(store)
    by_contract = {inv.contract_id: inv for inv in invoices}
    for cid in ("C0", "C1", "C2"):
        assert snapshot.state_from(store.state_row(cid)) is not None
    services.cancel(store, settings, by_contract["C0"].invoice_id)
    services.adjust(store, settings, by_contract["C1"].invoice_id, [], ["C1-0101"], "gone")
    services.confirm(store, settings, by_contract["C2"].invoice_id)
    assert snapshot.state_from(store.state_row("C2")) is not None  # a confirm changes nothing
    services.credit(store, settings, by_contract["C2"].invoice_id, None, False)
    for cid, why in (("C0", "cancelled"), ("C1", "adjusted"), ("C2", "issued")):
        row = store.state_row(cid)
        assert row is not None and row["Valid"] is False and why in row["Why"]
    services.run_daily(store, settings, span=(YEAR[2], YEAR[2]))
    invoices, _ = services.list_invoices(store, YEAR[2], YEAR[2])
    billed = sorted(d.source_id for i in invoices for line in i.lines for d in line.details)
    # C0's cancelled share and C2's credited one go out again; C1's written-off one does not
    assert billed == ["C0-0101", "C0-0102", "C1-0102", "C2-0101", "C2-0102"]
    assert services.audit(store, settings) == []


def test_audit_names_a_state_or_work_table_that_disagrees_with_the_invoices(
    store, storage_settings
):
    settings = storage_settings
    services.import_workbook(store, workbook(daily_book(2, YEAR[:3])), settings)
    services.run_daily(store, settings, span=(YEAR[1], YEAR[1]))
    state = snapshot.state_from(store.state_row("C0"))
    assert state is not None
    wrong = dataclasses.replace(state, invoiced=frozenset())
    row = store.state_row("C0")
    assert row is not None
    store.upsert(store.table, snapshot.state_entity(row["PartitionKey"], wrong))
    gone = next(e for e in store.work_rows("C1") if e.get("Id") == "C1-0102")
    store.delete_if_present(store.work, gone["PartitionKey"], gone["RowKey"], "tamper")
    found = services.audit(store, settings)
    assert any("C0" in f and "invoice them again" in f and "C0-0101" in f for f in found), found
    assert any("C1" in f and "missing from the work table" in f and "C1-0102" in f for f in found)
    assert (SourceType.TRANSACTION, "C0-0101") in state.invoiced
