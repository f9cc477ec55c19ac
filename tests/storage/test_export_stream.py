"""S8, X: an export streams. ``iter_invoices`` reads each contract of a range once, spools it and
hands out the merged invoices a chunk at a time; ``export_workbook`` writes each chunk and lets
it go. What comes out is exactly the listing and the workbook of the whole range at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from invoicing import services
from invoicing.model import Status
from invoicing.workbook.writer import invoice_workbook_bytes
from tests.storage.portfolios import END, START, expected, key_log, random_book, workbook
from tests.support.invoices import read_invoice_workbook


@pytest.fixture
def invoiced(store, storage_settings) -> bytes:
    data = workbook(random_book(21, contracts=8, transactions=300))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    return data


@pytest.mark.parametrize("chunk", [1, 3, 10])
def test_an_export_in_chunks_is_the_export_in_one_piece_read_once(store, invoiced, chunk):
    want, want_log = expected(invoiced)
    queries = store.queries
    whole = list(services.iter_invoices(store, chunk=10**9))
    once = store.queries - queries
    assert len(whole) == 1
    queries = store.queries
    chunks = list(services.iter_invoices(store, chunk=chunk))
    assert store.queries - queries == once  # every contract read once, whatever the chunk
    assert [i for c in chunks for i in c[0]] == want
    assert key_log([e for c in chunks for e in c[1]]) == key_log(want_log)
    assert len(chunks) == -(-max(len(want), len(want_log)) // chunk)
    assert all(len(c[0]) <= chunk and len(c[1]) <= chunk for c in chunks)


def test_a_chunked_listing_of_a_span_a_status_and_a_contract_is_the_one_at_once(
    store, invoiced, storage_settings
):
    want, _ = expected(invoiced)
    first = want[0]
    services.confirm(store, storage_settings, first.invoice_id)
    lo, hi = START + timedelta(days=5), END - timedelta(days=9)
    for args in (
        (lo, hi, None, None),
        (None, None, Status.CONFIRMED, None),
        (None, hi, None, first.contract_id),
        (lo, None, Status.DRAFT, first.contract_id),
    ):
        whole, whole_log = services.list_invoices(store, *args)
        chunks = list(services.iter_invoices(store, *args, chunk=2))
        assert [i for c in chunks for i in c[0]] == whole, args
        assert key_log([e for c in chunks for e in c[1]]) == key_log(whole_log), args
    confirmed, _ = services.list_invoices(store, status=Status.CONFIRMED)
    assert [i.invoice_id for i in confirmed] == [first.invoice_id]


@pytest.mark.parametrize("chunk", [1, 4])
def test_a_streamed_export_workbook_holds_what_the_workbook_of_the_listing_holds(
    store, invoiced, chunk
):
    invoices, log = services.list_invoices(store)
    export = services.export_workbook(store, keep=5, chunk=chunk)
    assert read_invoice_workbook(export.data) == read_invoice_workbook(
        invoice_workbook_bytes(invoices, log)
    )
    assert (export.invoices, export.log_rows) == (len(invoices), len(log))
    assert export.first == invoices[:5]


def test_an_export_of_a_range_with_nothing_in_it_is_the_empty_workbook(store, invoiced):
    later = END + timedelta(days=400)
    export = services.export_workbook(store, later, later, chunk=1)
    assert (export.invoices, export.log_rows, export.first) == (0, 0, [])
    assert read_invoice_workbook(export.data) == read_invoice_workbook(
        invoice_workbook_bytes([], [])
    )


def test_a_chunked_run_log_is_ordered_like_the_whole_one_when_import_order_is_not_id_order(
    store, storage_settings
):
    # C0 .. C11 are imported in that order, but C10 and C11 sort before C2 in the sheet
    data = workbook(random_book(22, contracts=12, transactions=200))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    invoices, log = services.list_invoices(store)
    whole = read_invoice_workbook(invoice_workbook_bytes(invoices, log))
    streamed = read_invoice_workbook(services.export_workbook(store, chunk=3).data)
    assert len(whole["RunLog"]) > 3
    assert streamed == whole
