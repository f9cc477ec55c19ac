"""W9 across uploads by point lookups: import keeps a TransactionId index (one row per stored
transaction) and checks the ids new to their contract against it instead of scanning the store;
a store whose contracts predate the index still gets the full check."""

from __future__ import annotations

import copy

import pytest

from invoicing import services
from invoicing.errors import InputRejected
from invoicing.storage import rows
from invoicing.storage import store as store_module
from invoicing.storage.keys import encode_key
from tests.storage.portfolios import random_book, workbook
from tests.support.workbooks import add, minimal_rows

MOVED = (
    "transaction T3 is already stored under contract C1; "
    "a TransactionId is unique across contracts and cannot move"
)


def _two_contracts():
    book = minimal_rows()
    add(book, "Contracts", ContractId="C2", ContractName="Other", Currency="USD")
    add(book, "Customers", ContractId="C2", CustomerId="K9", CustomerName="K9", SplitPercent=100)
    add(
        book,
        "ContractLines",
        ContractId="C2",
        LineId="L9",
        LineName="Work",
        BillingMethod="Time and material",
        Frequency="Daily",
        FirstRunDate=minimal_rows()["Transactions"][1][4],
    )
    return book


def _moved(book):
    moved = copy.deepcopy(book)
    t3 = moved["Transactions"][3]
    assert t3[0] == "T3"
    t3[1], t3[2], t3[3] = "C2", "L9", "Time"
    return moved


@pytest.mark.parametrize("point_lookups", [2000, 0])  # point reads, then per-partition queries
def test_a_moved_transaction_is_found_in_the_index_without_a_scan(
    store, storage_settings, monkeypatch, point_lookups
):
    monkeypatch.setattr(store_module, "POINT_LOOKUPS", point_lookups)
    book = _two_contracts()
    for n in range(300):  # stored transactions a scan would read
        add(
            book,
            "Transactions",
            TransactionId=f"X{n}",
            ContractId="C1",
            LineId="L1",
            Class="Time",
            Date=book["Transactions"][1][4],
            Amount=1,
            ReadyToInvoice="Yes",
        )
    services.import_workbook(store, workbook(book), storage_settings)
    assert store.get(store.globals, rows.txn_index_pk("X7"), encode_key("X7"))["ContractId"] == "C1"
    reads = store.reads
    with pytest.raises(InputRejected) as info:
        services.import_workbook(store, workbook(_moved(book)), storage_settings)
    assert [p.message for p in info.value.problems] == [MOVED]
    # the two partitions the upload replaces, the registry, the index: not the 300 others twice
    assert store.reads - reads < 2 * 320
    assert services.audit(store, storage_settings) == []


def test_a_store_from_before_the_index_is_still_checked_in_full(store, storage_settings):
    book = _two_contracts()
    services.import_workbook(store, workbook(book), storage_settings)
    # as stored before the index: no index rows, registry rows without the Due flag
    for t in ("T1", "T2", "T3"):
        store.delete_if_present(store.globals, rows.txn_index_pk(t), encode_key(t), "test")
    for cid, order in store.contracts():
        store.upsert(store.globals, rows.registry_entity(cid, order))
    with pytest.raises(InputRejected) as info:
        services.import_workbook(store, workbook(_moved(book)), storage_settings)
    assert [p.message for p in info.value.problems] == [MOVED]
    services.import_workbook(store, workbook(book), storage_settings)  # indexes them again
    assert store.get(store.globals, rows.txn_index_pk("T3"), encode_key("T3"))["ContractId"] == "C1"
    with pytest.raises(InputRejected):
        services.import_workbook(store, workbook(_moved(book)), storage_settings)


def test_every_stored_transaction_is_in_the_index(store, storage_settings):
    data = workbook(random_book(5, contracts=6, transactions=200, odd_ids=True))
    services.import_workbook(store, data, storage_settings)
    stored = {
        row["TransactionId"]: row["ContractId"]
        for row in store.query(
            store.globals,
            "PartitionKey ge @lo and PartitionKey lt @hi",
            {"lo": rows.TXN_PREFIX, "hi": rows.TXN_PREFIX[:-1] + ";"},
        )
    }
    from invoicing.workbook.reader import read_workbook

    want = {
        t.transaction_id: c.contract_id
        for c in read_workbook(data).portfolio.contracts
        for t in c.transactions
    }
    assert stored == want
