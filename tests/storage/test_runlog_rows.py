"""S8, X4: where a committed (contract, run date) keeps its RunLog. A log that packs into one
entity is written into the commit marker itself (one row fewer per contract and date, in the
commit and in the history); a larger one goes in ``X:`` parts the marker counts; markers of
stores from before that keep reading their parts."""

from __future__ import annotations

from datetime import date, timedelta

from invoicing import engine, services
from invoicing.storage import codec, rows
from invoicing.storage.keys import encode_key
from invoicing.workbook.reader import read_workbook
from tests.support.workbooks import add, minimal_rows, put, xlsx

RUN = date(2020, 10, 31)  # L1 (Monthly, Last) is due


def _planned_log(data: bytes) -> list:
    plan = engine.plan_range(read_workbook(data).portfolio, [RUN])
    return list(plan.log)


def _partition(store, contract_id: str = "C1") -> list[dict]:
    return store.partition_rows(encode_key(contract_id))


def _run(store, settings, data: bytes) -> None:
    services.import_workbook(store, data, settings)
    services.run_daily(store, settings, span=(RUN, RUN))


def test_a_dates_run_log_is_in_its_commit_marker_not_a_row_of_its_own(store, storage_settings):
    data = xlsx(minimal_rows())
    _run(store, storage_settings, data)
    found = _partition(store)
    (marker,) = [e for e in found if e["RowKey"] == codec.marker_key(RUN)]
    assert marker["LogInline"] is True and marker["LogParts"] == 0
    assert [e["RowKey"] for e in found if e["RowKey"].startswith("X:")] == []
    _, log = services.list_invoices(store)
    assert log == _planned_log(data) and log


def test_a_run_log_too_large_for_one_entity_goes_in_parts_and_reads_back_whole(
    store, storage_settings
):
    book = minimal_rows()
    put(book, "ContractLines", 2, "NotToExceed", 1)  # L1: every item of it is held
    for n in range(1200):
        add(
            book,
            "Transactions",
            TransactionId=f"H{n:05d}-{'x' * 40}",
            ContractId="C1",
            LineId="L1",
            Class="Time",
            Date=date(2020, 10, 1) + timedelta(days=n % 28),
            Description="held",
            Resource="Ana",
            Quantity=1,
            UnitPrice=10,
            ReadyToInvoice="Yes",
        )
    data = xlsx(book)
    _run(store, storage_settings, data)
    found = _partition(store)
    (marker,) = [e for e in found if e["RowKey"] == codec.marker_key(RUN)]
    parts = [e for e in found if e["RowKey"].startswith(f"X:{RUN:%Y%m%d}")]
    assert "LogInline" not in marker and marker["LogParts"] == len(parts) >= 2
    want = _planned_log(data)
    assert len(want) > 1200
    _, log = services.list_invoices(store)
    assert log == want


def test_a_marker_from_before_inline_logs_still_reads_its_parts(store, storage_settings):
    data = xlsx(minimal_rows())
    _run(store, storage_settings, data)
    pk = encode_key("C1")
    marker = store.get(store.table, pk, codec.marker_key(RUN))
    assert marker is not None
    # the marker and X: part an older version wrote for the same date
    (part,) = rows.log_entities(pk, RUN, _planned_log(data))
    old = {
        k: v
        for k, v in marker.items()
        if not k.startswith("_") and k not in ("LogInline", "Parts") and not k[1:].isdigit()
    }
    store.table.upsert_entity({**old, "LogParts": 1}, mode="replace")
    store.table.upsert_entity(part)
    stored = store.get(store.table, pk, codec.marker_key(RUN))
    assert stored is not None and "LogInline" not in stored and "P0" not in stored
    _, log = services.list_invoices(store)
    assert log == _planned_log(data)


def test_a_full_load_without_the_log_holds_no_run_log(store, storage_settings):
    """``Store.load`` (import, audit, a run's full read) skips the RunLog (``hi="X"``): the
    history's logs are not read nor held. Inlined into the markers, every date's log is."""
    _run(store, storage_settings, xlsx(minimal_rows()))
    part = store.load("C1")
    assert RUN in part.markers
    assert part.logs == {}
    leaked = sorted(k for k in part.markers[RUN] if k == "Parts" or k[1:].isdigit())
    assert leaked == [], f"a load without the log read the RunLog inline: {leaked}"


def test_a_stale_part_of_an_earlier_attempt_does_not_double_an_inline_log(
    store, storage_settings
):
    """R17/X4 (sound): an attempt that wrote X: parts before a crash, then a commit inlining."""
    data = xlsx(minimal_rows())
    _run(store, storage_settings, data)
    pk = encode_key("C1")
    for part in rows.log_entities(pk, RUN, _planned_log(data)):
        store.table.upsert_entity(part)  # what the crashed attempt left
    marker = store.get(store.table, pk, codec.marker_key(RUN))
    assert marker is not None and marker["LogInline"] is True
    _, log = services.list_invoices(store)
    assert log == _planned_log(data) and log
