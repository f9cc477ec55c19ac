"""Confirm and cancel (R15, R16): gap-free numbers under concurrency and crashes, clear refusals,
cancelled items going out again."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from invoicing import services
from invoicing.model import Status
from invoicing.storage.errors import NotFound, WriteRefused, WrongState
from invoicing.storage.store import Store
from tests.storage.portfolios import workbook
from tests.support.workbooks import HEADERS, Book


def many_drafts_book(n: int) -> Book:
    """``n`` contracts, each with a daily line and one transaction: n drafts on 2020-10-02."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for c in range(n):
        cid = f"C{c:02d}"
        book["Contracts"].append([cid, f"Contract {c}", "USD", 30])
        book["Customers"].append([cid, "K", "Customer", 100, None, None])
        book["ContractLines"].append(
            [
                cid,
                "L",
                "Work",
                "Time and material",
                None,
                None,
                "Daily",
                None,
                date(2020, 10, 1),
                None,
                None,
            ]
        )
        book["Transactions"].append(
            [
                f"T{c:02d}",
                cid,
                "L",
                "Time",
                date(2020, 10, 1),
                "w",
                None,
                None,
                None,
                100 + c,
                "Yes",
            ]
        )
    return book


@pytest.fixture
def drafts(store: Store, storage_settings) -> list[str]:
    services.import_workbook(store, workbook(many_drafts_book(20)), storage_settings)
    services.run_daily(store, storage_settings, today=date(2020, 10, 2))
    invoices, _ = services.list_invoices(store)
    assert len(invoices) == 20
    return [i.invoice_id for i in invoices]


def test_twenty_concurrent_confirms_give_twenty_distinct_gap_free_numbers(
    store, storage_settings, drafts
):
    numbers: dict[str, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(drafts))

    def confirm(invoice_id: str) -> None:
        own = services.open_store(storage_settings)  # one client per thread, like separate hosts
        barrier.wait()
        try:
            numbers[invoice_id] = services.confirm(own, storage_settings, invoice_id).invoice_number
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=confirm, args=(i,)) for i in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers.values()) == [f"INV-{n:06d}" for n in range(1, 21)]
    assert services.audit(store, storage_settings) == []


def test_confirming_a_non_draft_and_cancelling_a_confirmed_invoice_fail_clearly(
    store, storage_settings, drafts
):
    first, second = drafts[:2]
    confirmed = services.confirm(store, storage_settings, first)
    assert confirmed.status is Status.CONFIRMED and confirmed.invoice_number == "INV-000001"
    with pytest.raises(WrongState, match=f"{first} is Confirmed, not a draft"):
        services.confirm(store, storage_settings, first)
    with pytest.raises(WrongState, match=f"{first} is Confirmed, not a draft"):
        services.cancel(store, storage_settings, first)
    cancelled = services.cancel(store, storage_settings, second)
    assert cancelled.status is Status.CANCELLED and cancelled.invoice_number is None
    with pytest.raises(WrongState, match="is Cancelled, not a draft"):
        services.confirm(store, storage_settings, second)
    with pytest.raises(NotFound):
        services.confirm(store, storage_settings, "INV-20201002-0000000000")
    with pytest.raises(NotFound):
        services.get_invoice(store, "not an invoice / id")
    assert services.audit(store, storage_settings) == []
    assert services.confirm(store, storage_settings, drafts[2]).invoice_number == "INV-000002"


def test_confirm_and_cancel_on_the_command_line_exit_non_zero_naming_the_problem(
    store, storage_settings, drafts, monkeypatch, capsys
):
    from invoicing.cli import main

    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection)
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    assert main(["confirm", drafts[0]]) == 0
    assert f"{drafts[0]} confirmed as INV-000001" in capsys.readouterr().out
    assert main(["cancel", drafts[0]]) == 1
    assert f"{drafts[0]} is Confirmed, not a draft" in capsys.readouterr().err
    assert main(["confirm", "INV-20990101-ffffffffff"]) == 1
    assert "no such invoice" in capsys.readouterr().err


def test_a_crash_between_taking_a_number_and_stamping_it_leaves_no_gap(
    store, storage_settings, drafts
):
    def crash_at_stamp(label: str) -> None:
        if label == "confirm-stamp":
            raise WriteRefused("simulated crash")

    store.write_hook = crash_at_stamp
    with pytest.raises(WriteRefused):
        services.confirm(store, storage_settings, drafts[0])
    store.write_hook = None
    # the next confirm (of another invoice) first finishes the interrupted one
    assert services.confirm(store, storage_settings, drafts[1]).invoice_number == "INV-000002"
    assert services.get_invoice(store, drafts[0]).invoice_number == "INV-000001"
    # a number taken for an invoice cancelled before it was stamped is given back
    store.write_hook = crash_at_stamp
    with pytest.raises(WriteRefused):
        services.confirm(store, storage_settings, drafts[2])
    store.write_hook = None
    header = store.get(
        store.table, store.load(drafts_contract(store, drafts[2])).pk, f"I:{drafts[2]}"
    )
    cancelled = dict(header, Status="Cancelled")
    # as cancel writes it: the header and the contract's state made stale together (S8)
    store.replace_if(
        store.table, cancelled, header["_etag"], "test-cancel", stale_state="cancelled"
    )
    assert services.confirm(store, storage_settings, drafts[3]).invoice_number == "INV-000003"
    assert services.audit(store, storage_settings) == []


def drafts_contract(store: Store, invoice_id: str) -> str:
    contract = store.index_lookup(invoice_id)
    assert contract is not None
    return contract


def test_a_cancelled_invoice_stays_and_its_items_go_out_on_the_lines_next_due_run(
    store, storage_settings
):
    book = many_drafts_book(1)
    book["ContractLines"][1][6:8] = ["Weekly", "Monday"]  # due Oct 5, 12, 19 ...
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, today=date(2020, 10, 5))
    (first,), _ = services.list_invoices(store)
    assert first.invoice_date == date(2020, 10, 5)
    services.cancel(store, storage_settings, first.invoice_id)
    assert services.cancel(store, storage_settings, first.invoice_id).status is Status.CANCELLED
    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 10, 12)))
    invoices, _ = services.list_invoices(store)
    assert [(i.invoice_date, i.status) for i in invoices] == [
        (date(2020, 10, 5), Status.CANCELLED),
        (date(2020, 10, 12), Status.DRAFT),
    ]
    again = invoices[1]
    assert again.invoice_id != first.invoice_id
    assert [d.source_id for line in again.lines for d in line.details] == ["T00"]
    assert again.lines[0]._replace(cutoff=None).amount == first.amount
    drafts, _ = services.list_invoices(store, status="Draft")
    assert [i.invoice_id for i in drafts] == [again.invoice_id]
    assert services.audit(store, storage_settings) == []
