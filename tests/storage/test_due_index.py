"""S8: the due-date index. A run of date D loads only the contracts with something due on D (and
those the index does not hold yet), measured on the store's own request counts; import keeps the
index in step with schedules, milestones and re-uploads. Nothing due is ever left out."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest

from invoicing import engine, services
from invoicing.schedule import generated_schedule
from invoicing.storage import due, rows
from invoicing.storage.keys import encode_key
from invoicing.workbook.reader import read_workbook
from tests.storage.portfolios import END, START, expected, random_book, stored, workbook
from tests.support.workbooks import add, minimal_rows, put

D = date.fromisoformat

SCHEDULES = [
    ("Daily", None),
    ("Weekly", "Monday"),
    ("Weekly", "Sunday"),
    ("Biweekly", "Friday"),
    ("Biweekly", "Tuesday"),
    ("Semimonthly", "15, Last"),
    ("Semimonthly", "1, 16"),
    ("Monthly", "Last"),
    ("Monthly", "31"),
    ("Monthly", "First Monday"),
    ("Monthly", "Last Friday"),
    ("Quarterly", "15"),
    ("Quarterly", "Last"),
]


@pytest.mark.parametrize("first_offset", [0, 1, 3, 6, 9, 13, 40, 75])
@pytest.mark.parametrize(("frequency", "run_day"), SCHEDULES)
def test_a_pattern_has_exactly_its_schedules_run_dates(frequency, run_day, first_offset):
    """The index groups schedules by pattern; a pattern's representative and a line's span must
    answer exactly like the line's own schedule on every day (a miss would leave money unbilled)."""
    first = date(2020, 1, 1) + timedelta(days=first_offset)
    last = first + timedelta(days=500) if first_offset % 2 else None
    schedule = generated_schedule(frequency, run_day, first, last, None)
    key, rep = due.pattern_of(schedule)
    span = (schedule.first, schedule.last or date.max)
    for n in range(-20, 800):
        day = first + timedelta(days=n)
        in_index = rep.is_run_date(day) and span[0] <= day <= span[1]
        assert in_index == schedule.is_run_date(day), (frequency, run_day, first, day)
    # schedules that differ only by their start share a pattern (Biweekly: the start modulo 14
    # days; Quarterly: its month modulo 3)
    moved = first.replace(year=first.year + 3) if frequency == "Quarterly" else first
    later = generated_schedule(frequency, run_day, moved + timedelta(days=14 * 52), None, None)
    if frequency == "Quarterly":
        later = generated_schedule(frequency, run_day, moved, None, None)
    assert due.pattern_of(later)[0] == key


def test_an_rrule_schedule_is_its_own_pattern():
    first = D("2020-01-06")
    schedule = generated_schedule(None, None, first, None, "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH")
    _, rep = due.pattern_of(schedule)
    for n in range(-10, 400):
        day = first + timedelta(days=n)
        assert rep.is_run_date(day) == schedule.is_run_date(day)


def _due_on(data: bytes, day: date) -> set[str]:
    """The contracts the engine has a line due on ``day`` for (R8): the reference."""
    return {
        c.contract_id
        for c in read_workbook(data).portfolio.contracts
        if engine.index_contract(c, [day]).due
    }


@pytest.mark.parametrize("seed", [3, 8])
def test_a_one_date_run_loads_only_the_contracts_due_that_day(store, storage_settings, seed):
    data = workbook(random_book(seed, contracts=12, transactions=150, odd_ids=seed == 8))
    services.import_workbook(store, data, storage_settings)
    contracts = len(read_workbook(data).portfolio.contracts)
    for day in engine.date_range(START, END):
        store.loads.clear()
        summary = services.run_daily(store, storage_settings, span=(day, day))
        assert set(store.loads) == _due_on(data, day), day
        assert summary.contracts == contracts  # the ledger still counts every contract
    assert stored(store) == expected(data)
    assert services.audit(store, storage_settings) == []


@pytest.mark.parametrize("seed", [3, 48])
def test_the_due_contracts_of_many_dates_at_once_are_the_engines_date_by_date(
    store, storage_settings, seed
):
    """The dispatch of a span asks the index once for all its dates; every date's answer must
    be that date's due contracts, with no other date's leaking in."""
    data = workbook(random_book(seed, contracts=12, transactions=150))
    services.import_workbook(store, data, storage_settings)
    days = [START + timedelta(days=i) for i in range(0, 61, 3)] + [END + timedelta(days=40)]
    per_day = store.due_by_date(days)
    assert sorted(per_day) == sorted(days)
    for day in days:
        assert per_day[day] == _due_on(data, day), day
    assert store.due_contracts(days) == set().union(*(_due_on(data, d) for d in days))
    assert len({frozenset(found) for found in per_day.values()}) > 1  # not one set every date


def test_rows_read_follow_what_is_due_not_what_is_stored(store, storage_settings):
    """Ten contracts invoiced monthly, one weekly: a Monday run reads the weekly one's partition
    and a handful of index rows, however much the monthly ones hold."""
    book = random_book(1, contracts=0)
    for c in range(11):
        cid = f"C{c}"
        add(book, "Contracts", ContractId=cid, ContractName=cid, Currency="USD")
        add(book, "Customers", ContractId=cid, CustomerId="K", CustomerName="K", SplitPercent=100)
        weekly = c == 0
        add(
            book,
            "ContractLines",
            ContractId=cid,
            LineId="L1",
            LineName="Work",
            BillingMethod="Time and material",
            Frequency="Weekly" if weekly else "Monthly",
            RunDay="Monday" if weekly else "15",
            FirstRunDate=D("2020-09-01"),
        )
        for t in range(60):
            add(
                book,
                "Transactions",
                TransactionId=f"T{c}.{t}",
                ContractId=cid,
                LineId="L1",
                Class="Time",
                Date=D("2020-09-01") + timedelta(days=t % 40),
                Amount=10,
                ReadyToInvoice="Yes",
            )
    services.import_workbook(store, workbook(book), storage_settings)
    store.loads.clear()
    reads = store.reads
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    assert store.loads == ["C0"]
    # C0's partition (60 transactions, its configuration, index state) and a few index and
    # bookkeeping rows, not the other 600 transactions
    assert store.reads - reads < 120
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(D("2020-10-15"), D("2020-10-15")))
    assert sorted(store.loads) == sorted(f"C{c}" for c in range(1, 11))


def test_a_reimport_moves_the_index_with_the_schedule(store, storage_settings):
    book = minimal_rows()  # L1 Monthly Last from Oct 1, L2 explicit Oct 5 and Nov 2, M1 Oct 15
    services.import_workbook(store, workbook(book), storage_settings)
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    assert store.loads == ["C1"]
    changed = copy.deepcopy(book)
    put(changed, "ContractLines", 2, "Frequency", "Weekly")  # L1: every Wednesday from Sep 2
    put(changed, "ContractLines", 2, "RunDay", "Wednesday")
    put(changed, "ContractLines", 2, "FirstRunDate", D("2020-09-02"))
    del changed["InvoiceSchedule"][1]  # L2: Nov 2 only
    changed["Milestones"][1][4] = D("2020-10-20")  # M1 moves (not invoiced yet)
    services.import_workbook(store, workbook(changed), storage_settings)
    runs = {
        "2020-10-07": ["C1"],  # a Wednesday
        "2020-10-15": [],  # the old milestone date
        "2020-10-20": ["C1"],  # the new one
        "2020-10-31": [],  # the old Monthly Last
        "2020-11-02": ["C1"],  # the explicit date kept
    }
    for day, loaded in runs.items():
        store.loads.clear()
        services.run_daily(store, storage_settings, span=(D(day), D(day)))
        assert store.loads == loaded, day
    # the stale rows are gone from the index, not merely outnumbered
    assert store.get(store.globals, due.date_pk(D("2020-10-15")), encode_key("C1")) is None
    assert services.audit(store, storage_settings) == []


def test_a_contract_the_index_does_not_hold_is_loaded_by_every_run(store, storage_settings):
    """A store imported before the index existed: its contracts are loaded on every date until
    an upload indexes them (the index only ever narrows what is certainly not due)."""
    data = workbook(minimal_rows())
    services.import_workbook(store, data, storage_settings)
    store.upsert(store.globals, rows.registry_entity("C1", 0))  # as written before S8
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-06")))
    assert store.loads == ["C1"]
    services.import_workbook(store, data, storage_settings)  # unchanged, but now indexed
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(D("2020-10-07"), D("2020-10-07")))
    assert store.loads == []
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    assert store.loads == ["C1"]
