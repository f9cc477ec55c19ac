"""S8, X: an export streams. ``iter_invoices`` reads a range a window of whole invoice dates at a
time, and ``export_workbook`` writes each window and lets it go; what comes out is exactly the
listing and the workbook of the whole range at once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise

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


@pytest.mark.parametrize("window", [1, 3, 10])
def test_an_export_in_windows_is_the_export_in_one_piece(store, invoiced, window):
    want, want_log = expected(invoiced)
    assert len({i.invoice_date for i in want}) > 4  # several dates, so several windows
    chunks = list(services.iter_invoices(store, window=window))
    assert [i for c in chunks for i in c[0]] == want
    assert key_log([e for c in chunks for e in c[1]]) == key_log(want_log)
    per_date = max(Counter(i.invoice_date for i in want).values())
    assert len(chunks) > 1
    for before, after in pairwise(chunks):
        dates = [i.invoice_date for i in before[0]] + [e.run_date for e in before[1]]
        later = [i.invoice_date for i in after[0]] + [e.run_date for e in after[1]]
        if dates and later:
            assert max(dates) < min(later)  # a date is never split between two windows
    # what one window holds: about ``window`` invoices, never the range
    assert max(len(c[0]) for c in chunks) < window + per_date


def test_a_windowed_listing_of_a_span_a_status_and_a_contract_is_the_one_at_once(
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
        chunks = list(services.iter_invoices(store, *args, window=2))
        assert [i for c in chunks for i in c[0]] == whole, args
        assert key_log([e for c in chunks for e in c[1]]) == key_log(whole_log), args
    confirmed, _ = services.list_invoices(store, status=Status.CONFIRMED)
    assert [i.invoice_id for i in confirmed] == [first.invoice_id]


@pytest.mark.parametrize("window", [1, 4])
def test_a_streamed_export_workbook_holds_what_the_workbook_of_the_listing_holds(
    store, invoiced, window
):
    invoices, log = services.list_invoices(store)
    export = services.export_workbook(store, keep=5, window=window)
    assert read_invoice_workbook(export.data) == read_invoice_workbook(
        invoice_workbook_bytes(invoices, log)
    )
    assert (export.invoices, export.log_rows) == (len(invoices), len(log))
    assert export.first == invoices[:5]


def test_an_export_of_a_range_with_nothing_in_it_is_the_empty_workbook(store, invoiced):
    later = END + timedelta(days=400)
    export = services.export_workbook(store, later, later, window=1)
    assert (export.invoices, export.log_rows, export.first) == (0, 0, [])
    assert read_invoice_workbook(export.data) == read_invoice_workbook(
        invoice_workbook_bytes([], [])
    )
