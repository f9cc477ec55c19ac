"""S7 + S8: audit recomputes the due-date index from the stored configuration and names every
difference. Each tampering below is one a run would act on: a "missing" finding is checked by
running the date it names and seeing the contract skipped."""

from __future__ import annotations

import json
from datetime import date

import pytest

from invoicing import services
from invoicing.services.audit_due import due_index_agrees
from invoicing.storage import due
from invoicing.storage.keys import encode_key
from tests.storage.portfolios import random_book, workbook
from tests.support.workbooks import add, minimal_rows

D = date.fromisoformat


def book_with_patterns():
    """C1 of ``minimal_rows`` (L1 Monthly Last Oct 1 - Dec 31, L2 explicit Oct 5 and Nov 2, L3
    milestone M1 on Oct 15) and C2 with an open-ended Weekly Monday line."""
    book = minimal_rows()
    add(book, "Contracts", ContractId="C2", ContractName="Two", Currency="EUR")
    add(book, "Customers", ContractId="C2", CustomerId="K", CustomerName="K", SplitPercent=100)
    add(
        book,
        "ContractLines",
        ContractId="C2",
        LineId="W",
        LineName="Weekly",
        BillingMethod="Time and material",
        Frequency="Weekly",
        RunDay="Monday",
        FirstRunDate=D("2020-10-01"),
    )
    return book


@pytest.fixture
def indexed(store, storage_settings):
    services.import_workbook(store, workbook(book_with_patterns()), storage_settings)
    assert due_index_agrees(store) == []
    return store


def pattern_key(store, contract_id: str) -> str:
    rows = store.query(
        store.globals,
        "PartitionKey ge @lo and PartitionKey lt @hi and RowKey eq @rk",
        {"lo": due.PREFIX + "G", "hi": due.PREFIX + "H", "rk": encode_key(contract_id)},
    )
    assert len(rows) == 1
    return rows[0]["PartitionKey"][len(due.PREFIX) + 1 :]


def skipped_by_a_run_of(store, settings, day: date, contract_id: str) -> bool:
    store.loads.clear()
    services.run_daily(store, settings, span=(day, day))
    return contract_id not in store.loads


@pytest.mark.parametrize("seed", [4, 8])
def test_a_clean_store_audits_clean_in_a_query_of_each_table(store, storage_settings, seed):
    data = workbook(random_book(seed, contracts=10, transactions=120, odd_ids=seed == 8))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-10-20")))
    queries = store.queries
    assert due_index_agrees(store) == []
    # the registry, the whole index, and one scan of each of the contracts' tables (shards)
    assert store.queries - queries == 2 + store.table.shards
    assert services.audit(store, storage_settings) == []


def test_a_deleted_date_row_is_named_and_a_run_of_that_date_would_skip_the_contract(
    indexed, storage_settings
):
    indexed.delete_if_present(indexed.globals, due.date_pk(D("2020-10-05")), "C1", "tamper")
    found = services.audit(indexed, storage_settings)
    assert found == [
        "contract C1: run date 2020-10-05 (schedule row of line L2) is missing from the due "
        "index: a run of 2020-10-05 would skip it (S8)"
    ]
    assert skipped_by_a_run_of(indexed, storage_settings, D("2020-10-05"), "C1")


def test_a_deleted_milestone_date_row_is_named(indexed, storage_settings):
    indexed.delete_if_present(indexed.globals, due.date_pk(D("2020-10-15")), "C1", "tamper")
    assert due_index_agrees(indexed) == [
        "contract C1: run date 2020-10-15 (milestone M1 of line L3) is missing from the due "
        "index: a run of 2020-10-15 would skip it (S8)"
    ]
    assert skipped_by_a_run_of(indexed, storage_settings, D("2020-10-15"), "C1")


def test_a_contract_removed_from_its_pattern_is_named_with_the_first_run_it_would_miss(
    indexed, storage_settings
):
    key = pattern_key(indexed, "C2")
    indexed.delete_if_present(indexed.globals, due.pattern_pk(key), "C2", "tamper")
    found = due_index_agrees(indexed)
    assert found == [
        f"contract C2: line W (Weekly, 2020-10-01 to open end): it is not a member of pattern "
        f"{key}: missing from the due index: a run of 2020-10-05 would skip it (S8)"
    ]
    assert skipped_by_a_run_of(indexed, storage_settings, D("2020-10-05"), "C2")


def test_a_shortened_span_is_named_with_the_first_run_after_it(indexed, storage_settings):
    key = pattern_key(indexed, "C1")  # L1: Monthly Last, Oct 1 - Dec 31
    row = indexed.get(indexed.globals, due.pattern_pk(key), "C1")
    assert row is not None and json.loads(row["Spans"]) == [["2020-10-01", "2020-12-31"]]
    row["Spans"] = json.dumps([["2020-10-01", "2020-11-15"]])
    indexed.upsert(indexed.globals, row, "tamper")
    found = due_index_agrees(indexed)
    assert found == [
        f"contract C1: line L1 (Monthly, 2020-10-01 to 2020-12-31): pattern {key} holds it for "
        "2020-10-01 to 2020-11-15, its lines run 2020-10-01 to 2020-12-31: missing from the "
        "due index: a run of 2020-11-30 would skip it (S8)"
    ]
    assert skipped_by_a_run_of(indexed, storage_settings, D("2020-11-30"), "C1")
    assert not skipped_by_a_run_of(indexed, storage_settings, D("2020-10-31"), "C1")


def test_a_missing_or_altered_pattern_row_is_named(indexed, storage_settings):
    key = pattern_key(indexed, "C2")
    row = indexed.get(indexed.globals, due.PATTERNS, key)
    assert row is not None
    doc = json.loads(row["Schedule"])
    doc["wd"] = 1  # Tuesday instead of Monday
    indexed.upsert(indexed.globals, {**row, "Schedule": json.dumps(doc)}, "tamper")
    [found] = due_index_agrees(indexed)
    assert found.startswith(
        f"contract C2: line W (Weekly, 2020-10-01 to open end): pattern row {key} holds "
        "another schedule"
    )
    assert found.endswith("missing from the due index: a run of 2020-10-05 would skip it (S8)")
    assert skipped_by_a_run_of(indexed, storage_settings, D("2020-10-05"), "C2")
    indexed.delete_if_present(indexed.globals, due.PATTERNS, key, "tamper")
    assert due_index_agrees(indexed) == [
        f"contract C2: line W (Weekly, 2020-10-01 to open end): pattern row {key} is missing: "
        "missing from the due index: a run of 2020-10-05 would skip it (S8)"
    ]


def test_extra_rows_are_named_as_extra(indexed, storage_settings):
    rk = encode_key("C1")
    indexed.upsert(
        indexed.globals,
        {"PartitionKey": due.date_pk(D("2020-10-07")), "RowKey": rk, "ContractId": "C1"},
        "tamper",
    )
    key = pattern_key(indexed, "C2")
    indexed.upsert(
        indexed.globals,
        {
            "PartitionKey": due.pattern_pk(key),
            "RowKey": rk,
            "ContractId": "C1",
            "Spans": json.dumps([["2020-10-01", None]]),
        },
        "tamper",
    )
    indexed.upsert(
        indexed.globals,
        {"PartitionKey": due.date_pk(D("2020-10-08")), "RowKey": "Nobody", "ContractId": "Nobody"},
        "tamper",
    )
    assert due_index_agrees(indexed) == [
        "the due index names 'Nobody', which is not a registered contract (extra rows: a run "
        "loads nothing for them) (S8)",
        "contract C1: the due index names it for run date 2020-10-07, which neither its "
        "configuration nor its N:due record has (extra: a run of 2020-10-07 loads it for "
        "nothing; no import removes the row) (S8)",
        f"contract C1: the due index puts it in pattern {key} for 2020-10-01 to open end, which "
        "none of its lines has (extra: runs on that pattern's dates load it for nothing) (S8)",
    ]


def test_a_widened_span_is_extra_not_missing(indexed):
    key = pattern_key(indexed, "C1")
    row = indexed.get(indexed.globals, due.pattern_pk(key), "C1")
    assert row is not None
    row["Spans"] = json.dumps([["2020-10-01", None]])
    indexed.upsert(indexed.globals, row, "tamper")
    assert due_index_agrees(indexed) == [
        f"contract C1: line L1 (Monthly, 2020-10-01 to 2020-12-31): pattern {key} holds it for "
        "2020-10-01 to open end, its lines run 2020-10-01 to 2020-12-31 (extra: runs in "
        "2021-01-01 to open end load it for nothing) (S8)"
    ]


def test_an_n_due_record_that_disagrees_with_the_rows_is_named(indexed):
    pk = encode_key("C1")
    state = due.state_from(indexed.get(indexed.table, pk, due.STATE_KEY))
    assert state is not None and "2020-10-05" in state["dates"]
    state["dates"] = [d for d in state["dates"] if d != "2020-10-05"] + ["2020-10-09"]
    entity = {"PartitionKey": pk, "RowKey": due.STATE_KEY, **due.codec.pack(state, "due index")}
    indexed.upsert(indexed.table, entity, "tamper")
    assert due_index_agrees(indexed) == [
        "contract C1: the due index row of run date 2020-10-05 is not in its N:due record: no "
        "later import would remove it (S8)",
        "contract C1: its N:due record lists run date 2020-10-09, for which the due index has "
        "no row (S8)",
    ]
    indexed.delete_if_present(indexed.table, pk, due.STATE_KEY, "tamper")
    assert due_index_agrees(indexed) == [
        "contract C1 is marked indexed but has no N:due record of what it put in the due index: "
        "the next import cannot remove its stale rows (S8)"
    ]
