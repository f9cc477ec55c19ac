"""R13, R15: the unit of invoicing is an item's share; cancelling one customer's draft of a split
returns only that customer's shares, which go out again at the line's next due run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.model import Status
from tests.storage.portfolios import workbook
from tests.support.workbooks import minimal_rows, put


def _draft_of(store, customer_id: str, day: date):
    invoices, _ = services.list_invoices(store, start=day, end=day)
    (invoice,) = [i for i in invoices if i.customer_id == customer_id]
    return invoice


def _shares(store, source_id: str) -> list[tuple[str, str, Decimal, Status]]:
    invoices, _ = services.list_invoices(store)
    return sorted(
        (inv.customer_id, inv.invoice_date.isoformat(), d.amount, inv.status)
        for inv in invoices
        for line in inv.lines
        for d in line.details
        if d.source_id == source_id
    )


@pytest.mark.parametrize("sibling", ["Draft", "Confirmed"])
def test_cancelling_one_customers_draft_of_a_split_reinvoices_only_that_share(
    store, storage_settings, sibling
):
    # T3 (7.50) on L2 is split 60/40: K1 4.50, K2 3.00 on 2020-10-05; L2 is next due 2020-11-02.
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 1), date(2020, 10, 5)))
    k1 = _draft_of(store, "K1", date(2020, 10, 5))
    k2 = _draft_of(store, "K2", date(2020, 10, 5))
    if sibling == "Confirmed":
        services.confirm(store, storage_settings, k1.invoice_id)
    services.cancel(store, storage_settings, k2.invoice_id)

    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 11, 2)))

    assert _shares(store, "T3") == [
        ("K1", "2020-10-05", Decimal("4.50"), Status(sibling)),
        ("K2", "2020-10-05", Decimal("3.00"), Status.CANCELLED),
        ("K2", "2020-11-02", Decimal("3.00"), Status.DRAFT),
    ]
    again = _draft_of(store, "K2", date(2020, 11, 2))
    (detail,) = [d for line in again.lines for d in line.details if d.source_id == "T3"]
    assert detail.split_percent == Decimal("40")
    assert services.audit(store, storage_settings) == []


def test_a_share_cancelled_after_the_splits_changed_keeps_its_customer_percent_and_amount(
    store, storage_settings
):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 1), date(2020, 10, 5)))
    services.cancel(store, storage_settings, _draft_of(store, "K2", date(2020, 10, 5)).invoice_id)
    # the splits change to 50/50 before the next due run: T3's shares were fixed on Oct 5 (R13)
    put(book, "Customers", 2, "SplitPercent", 50)
    put(book, "Customers", 3, "SplitPercent", 50)
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 11, 2)))
    assert [s for s in _shares(store, "T3") if s[3] is Status.DRAFT] == [
        ("K1", "2020-10-05", Decimal("4.50"), Status.DRAFT),
        ("K2", "2020-11-02", Decimal("3.00"), Status.DRAFT),
    ]
    assert services.audit(store, storage_settings) == []


def test_an_item_changed_after_its_whole_invoice_was_cancelled_is_split_afresh(
    store, storage_settings
):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 1), date(2020, 10, 5)))
    for customer_id in ("K1", "K2"):
        invoice = _draft_of(store, customer_id, date(2020, 10, 5))
        services.cancel(store, storage_settings, invoice.invoice_id)
    put(book, "Transactions", 4, "Amount", 10)  # T3 corrected from 7.50 to 10.00
    put(book, "Transactions", 4, "UnitPrice", None)
    put(book, "Transactions", 4, "Quantity", None)
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 11, 2)))
    assert [s for s in _shares(store, "T3") if s[3] is Status.DRAFT] == [
        ("K1", "2020-11-02", Decimal("6.00"), Status.DRAFT),
        ("K2", "2020-11-02", Decimal("4.00"), Status.DRAFT),
    ]
    assert services.audit(store, storage_settings) == []


def test_audit_names_a_customer_share_on_two_live_invoices(store, storage_settings):
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 1), date(2020, 10, 5)))
    k2 = _draft_of(store, "K2", date(2020, 10, 5))
    services.cancel(store, storage_settings, k2.invoice_id)
    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 11, 2)))
    # an operator "restores" the cancelled draft by hand: K2's share of T3 is now live twice
    from invoicing.storage import codec
    from invoicing.storage.keys import encode_key

    pk = encode_key("C1")
    header = store.get(store.table, pk, codec.header_key(k2.invoice_id))
    header["Status"] = Status.DRAFT.value
    store.upsert(store.table, {k: v for k, v in header.items() if not k.startswith("_")})
    problems = services.audit(store, storage_settings)
    assert any("customer K2's share is on 2 live invoices" in p and "T3" in p for p in problems)
