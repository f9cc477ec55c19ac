"""The main and work tables spread over several tables by partition (``storage.shards``): each
contract's partition whole in one table, a store's layout fixed when it is created, and a store
from before shards left in its one table."""

from __future__ import annotations

import dataclasses
import zlib
from datetime import date

import pytest
from azure.data.tables import TableServiceClient

from invoicing import services
from invoicing.settings import Settings
from invoicing.storage.keys import encode_key
from invoicing.storage.shards import (
    DEFAULT_SHARDS,
    LAYOUT_PK,
    LAYOUT_RK,
    ShardedTable,
    layout_entity,
    shard_of,
    table_names,
)
from invoicing.storage.store import Store
from tests.storage.portfolios import workbook
from tests.support.workbooks import daily_book

D = date.fromisoformat
START = D("2020-01-01")


def _tables(settings: Settings) -> dict[str, list[dict]]:
    """Every table of the store's prefix with its entities, straight from the service."""
    service = TableServiceClient.from_connection_string(settings.storage_connection or "")
    prefix = settings.table_prefix.lower()
    return {
        t.name: [dict(e) for e in service.get_table_client(t.name).list_entities()]
        for t in service.list_tables()
        if t.name.lower().startswith(prefix)
    }


def test_the_table_of_a_partition_never_changes() -> None:
    # a stored store depends on it: a different hash would look for every contract elsewhere
    assert [shard_of(pk, 16) for pk in ("C0", "C1", "Adatum~20X", "")] == [
        zlib.crc32(pk.encode()) % 16 for pk in ("C0", "C1", "Adatum~20X", "")
    ]
    assert shard_of("anything", 1) == 0
    assert table_names("inv", 1) == ["inv"]
    assert table_names("inv", 3) == ["invs00", "invs01", "invs02"]


def test_a_new_store_keeps_each_contract_whole_in_the_table_of_its_partition(
    storage_settings: Settings,
) -> None:
    # the production default (the test session's stores use two tables: tests/conftest.py)
    settings = dataclasses.replace(storage_settings, table_shards=DEFAULT_SHARDS)
    store = services.open_store(settings)
    assert store.table.shards == store.work.shards == DEFAULT_SHARDS == Settings().table_shards
    services.import_workbook(store, workbook(daily_book(12, [START])), storage_settings)
    summary = services.run_daily(store, storage_settings, today=D("2020-01-02"))
    assert summary.invoices == 12

    tables = _tables(storage_settings)
    prefix = storage_settings.table_prefix
    assert prefix not in tables and prefix + "work" not in tables  # no single table
    for base in (prefix, prefix + "work"):
        names = table_names(base, DEFAULT_SHARDS)
        assert set(names) <= set(tables)
        holders: dict[str, set[int]] = {}
        for n, name in enumerate(names):
            for e in tables[name]:
                holders.setdefault(e["PartitionKey"], set()).add(n)
        assert {encode_key(f"C{c}") for c in range(12)} <= set(holders)
        for pk, where in holders.items():
            assert where == {shard_of(pk, DEFAULT_SHARDS)}, pk
        assert len({n for where in holders.values() for n in where}) > 1  # spread, not piled
    assert [r for r in tables[prefix + "globals"] if r["PartitionKey"] == LAYOUT_PK] == [
        {"PartitionKey": LAYOUT_PK, "RowKey": LAYOUT_RK, "Shards": DEFAULT_SHARDS, "Ready": True}
    ]
    assert services.audit(store, storage_settings) == []


def test_a_store_from_before_shards_keeps_its_one_table(storage_settings: Settings) -> None:
    # what a version before shards left: its three tables, the main one holding the contracts
    service = TableServiceClient.from_connection_string(storage_settings.storage_connection or "")
    prefix = storage_settings.table_prefix
    for name in (prefix, prefix + "globals", prefix + "work"):
        service.create_table(name)
    store = services.open_store(storage_settings)
    assert store.table.shards == 1 and store.work.shards == 1
    services.import_workbook(store, workbook(daily_book(3, [START])), storage_settings)
    services.run_daily(store, storage_settings, today=D("2020-01-02"))

    tables = _tables(storage_settings)
    assert not [name for name in tables if name.startswith(prefix + "s")]
    assert {e["PartitionKey"] for e in tables[prefix]} >= {encode_key(f"C{c}") for c in range(3)}
    again = services.open_store(storage_settings)  # recorded: the next open reads the same
    assert again.table.shards == 1
    assert len(services.list_invoices(again)[0]) == 3


def test_a_stores_layout_is_fixed_by_its_first_open(storage_settings: Settings) -> None:
    conn = storage_settings.storage_connection or ""
    first = Store(conn, storage_settings.table_prefix, shards=4)
    first.ensure_tables()
    later = Store(conn, storage_settings.table_prefix, shards=16)  # another version's default
    later.ensure_tables()
    assert first.table.shards == later.table.shards == later.work.shards == 4


def test_a_damaged_layout_row_is_an_error_not_a_guess(
    store: Store, storage_settings: Settings
) -> None:
    store.globals.upsert_entity({**layout_entity(16), "Shards": "sixteen"})
    with pytest.raises(ValueError, match="layout row says 'sixteen' tables"):
        services.open_store(storage_settings)


def test_a_query_of_several_partitions_answers_in_one_tables_order(store: Store) -> None:
    pks = [f"P{n:02d}" for n in range(40)]
    assert len({shard_of(pk, store.table.shards) for pk in pks}) > 1
    for pk in reversed(pks):
        store.upsert(store.table, {"PartitionKey": pk, "RowKey": "b", "V": 2})
        store.upsert(store.table, {"PartitionKey": pk, "RowKey": "a", "V": 1})
    before = store.queries
    found = store.query(store.table, "PartitionKey ge @lo", {"lo": "P10"})
    assert [(e["PartitionKey"], e["RowKey"]) for e in found] == [
        (pk, rk) for pk in pks[10:] for rk in ("a", "b")
    ]
    assert store.queries - before == store.table.shards  # every table was asked, and counted
    one = store.query(store.table, "PartitionKey eq @pk", {"pk": "P07"})
    assert [e["RowKey"] for e in one] == ["a", "b"]


def test_a_store_whose_layout_is_not_read_refuses_to_touch_its_tables(
    storage_settings: Settings,
) -> None:
    unopened = Store(storage_settings.storage_connection or "", storage_settings.table_prefix)
    with pytest.raises(RuntimeError, match="not read yet"):
        unopened.get(unopened.table, "C1", "C")
    assert isinstance(unopened.work, ShardedTable) and unopened.work.shards == 0


def test_shards_do_not_change_what_is_invoiced(storage_settings: Settings) -> None:
    """The same upload and run on a one-table store and a sharded one: the same invoices."""
    book = daily_book(9, [START])
    answers = []
    for shards, suffix in ((1, "one"), (DEFAULT_SHARDS, "many")):
        settings = dataclasses.replace(
            storage_settings, table_prefix=storage_settings.table_prefix + suffix
        )
        store = Store(settings.storage_connection or "", settings.table_prefix, shards=shards)
        store.ensure_tables()
        services.import_workbook(store, workbook(book), settings)
        services.run_daily(store, settings, today=D("2020-01-02"))
        invoices, log = services.list_invoices(store)
        answers.append((sorted(invoices), sorted(log)))
    assert answers[0] == answers[1] and len(answers[0][0]) == 9


def test_a_lost_layout_row_is_read_back_from_the_tables_whatever_the_setting_says_now(
    store: Store, storage_settings: Settings
) -> None:
    services.import_workbook(store, workbook(daily_book(6, [START])), storage_settings)
    services.run_daily(store, storage_settings, today=D("2020-01-02"))
    shards = store.table.shards
    store.globals.delete_entity(LAYOUT_PK, LAYOUT_RK)
    other = dataclasses.replace(storage_settings, table_shards=shards + 5)
    again = services.open_store(other)
    assert again.table.shards == again.work.shards == shards  # not shards + 5: nothing hidden
    assert len(services.list_invoices(again)[0]) == 6
    assert dict(again.globals.get_entity(LAYOUT_PK, LAYOUT_RK))["Shards"] == shards


def test_a_lost_layout_row_beside_a_one_table_main_table_stops_the_store_from_opening(
    store: Store, storage_settings: Settings
) -> None:
    # an old version opened this store once (its main table), then the row was lost: which
    # tables hold the contracts is not guessed at
    service = TableServiceClient.from_connection_string(storage_settings.storage_connection or "")
    service.create_table(storage_settings.table_prefix)
    store.globals.delete_entity(LAYOUT_PK, LAYOUT_RK)
    with pytest.raises(ValueError, match=r"layout row .* is missing and its tables do not say one"):
        services.open_store(storage_settings)


def test_a_first_open_cut_short_is_finished_by_the_next(storage_settings: Settings) -> None:
    service = TableServiceClient.from_connection_string(storage_settings.storage_connection or "")
    prefix = storage_settings.table_prefix
    globals_ = service.create_table(prefix + "globals")
    globals_.create_entity({**layout_entity(3), "Ready": False})  # stopped before any table
    store = services.open_store(storage_settings)
    assert store.table.shards == 3
    assert set(table_names(prefix, 3) + table_names(prefix + "work", 3)) <= set(
        _tables(storage_settings)
    )
    assert dict(store.globals.get_entity(LAYOUT_PK, LAYOUT_RK))["Ready"] is True


def test_a_filter_that_could_widen_past_one_partition_reads_every_table(store: Store) -> None:
    a, b = next(
        (x, y)
        for x in ("A1", "A2", "A3")
        for y in ("B1", "B2", "B3")
        if shard_of(x, store.table.shards) != shard_of(y, store.table.shards)
    )
    for pk in (a, b):
        store.upsert(store.table, {"PartitionKey": pk, "RowKey": "r"})
    found = store.query(
        store.table, "PartitionKey eq @pk or PartitionKey eq @pk2", {"pk": a, "pk2": b}
    )
    assert [e["PartitionKey"] for e in found] == sorted([a, b])


def test_rows_written_outside_the_layout_are_named_by_audit_and_health(
    store: Store, storage_settings: Settings
) -> None:
    services.import_workbook(store, workbook(daily_book(2, [START])), storage_settings)
    assert services.audit(store, storage_settings) == []
    assert services.health_report(store)["stray_tables"] == []
    # what a version from before shards does with this store: its one main table, written
    service = TableServiceClient.from_connection_string(storage_settings.storage_connection or "")
    old = service.create_table(storage_settings.table_prefix)
    old.upsert_entity({"PartitionKey": encode_key("C9"), "RowKey": "C", "P0": "{}"})
    found = services.audit(store, storage_settings)
    assert len(found) == 1 and f"table {storage_settings.table_prefix} holds rows" in found[0]
    report = services.health_report(store)
    assert report["status"] == "attention"
    assert report["stray_tables"] == [storage_settings.table_prefix]


def test_two_first_opens_at_once_agree_on_one_layout(storage_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    conn = storage_settings.storage_connection or ""
    stores = [Store(conn, storage_settings.table_prefix, shards=n) for n in (3, 5, 3, 5)]
    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(lambda s: s.ensure_tables(), stores))
    assert len({s.table.shards for s in stores}) == 1 and stores[0].table.shards in (3, 5)
    assert {s.work.shards for s in stores} == {stores[0].table.shards}
    winner = stores[0].table.shards
    if winner == 3:  # no table was made for the layout that lost (s03, s04 are only in 5's)
        prefix = storage_settings.table_prefix
        assert not {prefix + "s03", prefix + "s04"} & set(_tables(storage_settings))
