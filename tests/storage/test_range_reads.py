"""S8: exports and listings of a date range read that range, not the history; the invoice index
spreads a day of invoices over 16 partitions (no month-long hot partition); stores indexed the
older way (one partition per month) still answer."""

from __future__ import annotations

from datetime import date

from invoicing import engine, services
from invoicing.storage import rows
from invoicing.storage.keys import encode_key
from tests.storage.portfolios import END, START, expected, key_log, random_book, workbook

D = date.fromisoformat


def test_a_one_day_listing_reads_that_day_only(store, storage_settings):
    data = workbook(random_book(11, contracts=10, transactions=400))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    want, want_log = expected(data)
    got, log = services.list_invoices(store)
    assert got == want and key_log(log) == key_log(want_log)
    costs = []
    for day in engine.date_range(START, END):
        reads = store.reads
        invoices, log = services.list_invoices(store, day, day)
        costs.append(store.reads - reads)
        assert invoices == [i for i in want if i.invoice_date == day]
        assert key_log(log) == key_log([e for e in want_log if e.run_date == day])
    # a day's rows: its index rows, its invoices' headers, lines and details, its markers and
    # log parts, the registry; never the 400 transactions nor two months of invoices
    total = sum(len(p.transactions) for p in (store.load(c) for c, _ in store.contracts()))
    assert total >= 300
    assert max(costs) < total


def test_the_invoice_index_spreads_a_day_over_sixteen_partitions():
    ids = [engine.invoice_id(f"C{n}", "K", D("2024-01-31")) for n in range(400)]
    partitions = {rows.index_pk(i) for i in ids}
    assert len(partitions) == 16
    assert all(p.startswith("I20240131") for p in partitions)


def test_an_invoice_indexed_by_month_is_still_found_and_listed(store, storage_settings):
    data = workbook(random_book(4, contracts=3, transactions=60))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    want, _ = expected(data)
    first = want[0]
    # move its index entry to where older stores kept it
    key = encode_key(first.invoice_id)
    row = store.get(store.globals, rows.index_pk(first.invoice_id), key)
    store.delete_if_present(store.globals, row["PartitionKey"], key, "test")
    legacy = {k: v for k, v in row.items() if not k.startswith("_")}
    legacy["PartitionKey"] = rows.legacy_index_pk(first.invoice_id)
    store.upsert(store.globals, legacy)
    assert services.get_invoice(store, first.invoice_id).invoice_id == first.invoice_id
    day = first.invoice_date
    invoices, _ = services.list_invoices(store, day, day)
    assert first.invoice_id in {i.invoice_id for i in invoices}
    assert services.list_invoices(store)[0] == want
    assert services.audit(store, storage_settings) == []
