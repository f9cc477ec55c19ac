"""S8 attacked: can the due-date index say "not due" on a date the engine invoices something?

Hostile schedules (day-of-month clamping over February, Quarterly from odd months, Biweekly
starting off its RunDay, LastRunDate inside the range, RRULEs with COUNT, UNTIL, BYSETPOS and
negative month days, explicit rows beyond the range, milestones not ready), then a second upload
that changes schedules, adds lines and milestones, turns lines from one billing method to the
other: the store, run one date at a time as the daily timer does, must load exactly the contracts
the engine has a line due for and give exactly the invoices of the pure engine (R20)."""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from invoicing import engine, services
from invoicing.model import Portfolio
from invoicing.workbook.reader import read_workbook
from tests.storage.portfolios import key_log, stored, workbook
from tests.support.workbooks import HEADERS, Book, add

START = date(2021, 1, 20)
SWITCH = date(2021, 2, 25)  # the second upload lands after this run date
END = date(2021, 4, 10)
FREQUENCIES = [
    ("Daily", None),
    ("Weekly", None),  # the weekday of FirstRunDate
    ("Weekly", "Sunday"),
    ("Biweekly", "Wednesday"),
    ("Biweekly", None),
    ("Semimonthly", "1, 16"),
    ("Semimonthly", "15, Last"),
    ("Semimonthly", "29, 30"),
    ("Monthly", "29"),
    ("Monthly", "30"),
    ("Monthly", "31"),
    ("Monthly", None),  # the day of FirstRunDate
    ("Monthly", "Last"),
    ("Monthly", "Fourth Thursday"),
    ("Monthly", "Last Sunday"),
    ("Quarterly", "31"),
    ("Quarterly", "First Monday"),
    ("Quarterly", None),
]
RRULES = [
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYMONTHDAY=31",  # RFC 5545: skips short months
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,FR",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=DAILY;COUNT=9",
    "FREQ=WEEKLY;BYDAY=SA;UNTIL=20210313",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29",
]


def _day(rnd: random.Random, lo: date, hi: date) -> date:
    return lo + timedelta(days=rnd.randrange((hi - lo).days + 1))


def generated(rnd: random.Random) -> dict[str, object]:
    first = rnd.choice(
        [date(2020, 12, 31), date(2021, 1, 29), date(2021, 1, 31), _day(rnd, START, END)]
    )
    last = rnd.choice([None, None, _day(rnd, first, END + timedelta(days=30))])
    if rnd.random() < 0.25:
        return {"FirstRunDate": first, "LastRunDate": last, "RRule": rnd.choice(RRULES)}
    frequency, run_day = rnd.choice(FREQUENCIES)
    return {"Frequency": frequency, "RunDay": run_day, "FirstRunDate": first, "LastRunDate": last}


def hostile_book(seed: int, contracts: int = 8) -> Book:
    rnd = random.Random(seed)
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    txn = 0
    for c in range(contracts):
        cid = f"H{c}"
        add(book, "Contracts", ContractId=cid, ContractName=cid, Currency="EUR")
        add(book, "Customers", ContractId=cid, CustomerId="K", CustomerName="K", SplitPercent=100)
        for n in range(rnd.randint(1, 4)):
            lid = f"L{n}"
            kind = rnd.random()
            if kind < 0.25:
                add(
                    book,
                    "ContractLines",
                    ContractId=cid,
                    LineId=lid,
                    LineName=lid,
                    BillingMethod="Fixed price",
                )
                for m in range(rnd.randint(1, 3)):
                    add(
                        book,
                        "Milestones",
                        ContractId=cid,
                        LineId=lid,
                        MilestoneId=f"M{n}.{m}",
                        MilestoneName="m",
                        MilestoneDate=_day(rnd, START - timedelta(days=10), END),
                        Amount=Decimal(rnd.randint(1, 900)),
                        ReadyToInvoice=rnd.choice(["Yes", "Yes", "No"]),
                    )
                continue
            columns = generated(rnd) if kind < 0.8 else {}
            add(
                book,
                "ContractLines",
                ContractId=cid,
                LineId=lid,
                LineName=lid,
                BillingMethod="Time and material",
                **columns,
            )
            if not columns:  # an explicit schedule, some rows beyond the range
                days = {_day(rnd, START - timedelta(days=5), END + timedelta(days=20))}
                days |= {_day(rnd, START, END) for _ in range(3)}
                for day in sorted(days):
                    add(
                        book,
                        "InvoiceSchedule",
                        ContractId=cid,
                        LineId=lid,
                        InvoiceRunDate=day,
                        TransactionCutoffDate=day - timedelta(days=rnd.choice([0, 1, 4])),
                    )
            for _ in range(rnd.randint(0, 12)):
                txn += 1
                add(
                    book,
                    "Transactions",
                    TransactionId=f"T{txn}",
                    ContractId=cid,
                    LineId=lid,
                    Class="Time",
                    Date=_day(rnd, START - timedelta(days=20), END + timedelta(days=5)),
                    Amount=Decimal(rnd.randint(1, 500)),
                    ReadyToInvoice=rnd.choice(["Yes", "Yes", "Yes", "No"]),
                )
    return book


def changed_book(seed: int, book: Book) -> Book:
    """The second upload: the same items (never deleted), schedules changed, lines added, lines
    without items turned into the other billing method, milestones added and moved."""
    rnd = random.Random(seed * 7919)
    out = copy.deepcopy(book)
    header = out["ContractLines"][0]
    col = {name: header.index(name) for name in header}
    used = {(r[1], r[2]) for r in out["Transactions"][1:]}
    used |= {(r[0], r[1]) for r in out["Milestones"][1:]}
    for row in out["ContractLines"][1:]:
        cid, lid = row[col["ContractId"]], row[col["LineId"]]
        tm = row[col["BillingMethod"]] == "Time and material"
        generated_line = tm and (row[col["Frequency"]] or row[col["RRule"]])
        roll = rnd.random()
        if generated_line and roll < 0.5:
            for name in ("Frequency", "RunDay", "FirstRunDate", "LastRunDate", "RRule"):
                row[col[name]] = None
            for name, value in generated(rnd).items():
                row[col[name]] = value
        elif tm and (cid, lid) not in used and roll < 0.7:
            for name in ("Frequency", "RunDay", "FirstRunDate", "LastRunDate", "RRule"):
                row[col[name]] = None
            row[col["BillingMethod"]] = "Fixed price"
            out["InvoiceSchedule"][1:] = [
                r for r in out["InvoiceSchedule"][1:] if (r[0], r[1]) != (cid, lid)
            ]
            add(
                out,
                "Milestones",
                ContractId=cid,
                LineId=lid,
                MilestoneId=f"N{lid}",
                MilestoneName="new",
                MilestoneDate=_day(rnd, SWITCH, END),
                Amount=Decimal(77),
                ReadyToInvoice="Yes",
            )
    for row in out["Milestones"][1:]:  # some not-yet-invoiced milestones move
        if row[4] > SWITCH and rnd.random() < 0.5:
            row[4] = _day(rnd, SWITCH + timedelta(days=1), END)
    contracts = [r[0] for r in out["Contracts"][1:]]
    for cid in rnd.sample(contracts, 3):  # lines added by the later import
        lid = f"A{rnd.randrange(100)}"
        add(
            out,
            "ContractLines",
            ContractId=cid,
            LineId=lid,
            LineName="added",
            BillingMethod="Time and material",
            **generated(rnd),
        )
        add(
            out,
            "Transactions",
            TransactionId=f"X{cid}{lid}",
            ContractId=cid,
            LineId=lid,
            Class="Time",
            Date=START,
            Amount=Decimal(5),
            ReadyToInvoice="Yes",
        )
    return out


def due_on(portfolio: Portfolio, day: date) -> set[str]:
    return {c.contract_id for c in portfolio.contracts if engine.index_contract(c, [day]).due}


def run_each_date(store, settings, portfolio: Portfolio, start: date, end: date) -> None:
    for day in engine.date_range(start, end):
        store.loads.clear()
        services.run_daily(store, settings, span=(day, day))
        assert set(store.loads) == due_on(portfolio, day), day


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_hostile_schedules_one_date_at_a_time_equal_the_preview(store, storage_settings, seed):
    data = workbook(hostile_book(seed))
    portfolio = read_workbook(data).portfolio
    services.import_workbook(store, data, storage_settings)
    run_each_date(store, storage_settings, portfolio, START, END)
    plan = engine.plan_range(portfolio, engine.date_range(START, END))
    invoices, log = stored(store)
    assert invoices == sorted(
        plan.invoices, key=lambda i: (i.invoice_date, i.contract_id, i.customer_id)
    )
    assert key_log(log) == key_log(list(plan.log))
    assert services.audit(store, storage_settings) == []


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_a_second_upload_between_runs_moves_the_index_with_it(store, storage_settings, seed):
    first = hostile_book(seed)
    second = changed_book(seed, first)
    one, two = (read_workbook(workbook(b)).portfolio for b in (first, second))
    services.import_workbook(store, workbook(first), storage_settings)
    run_each_date(store, storage_settings, one, START, SWITCH)
    services.import_workbook(store, workbook(second), storage_settings)
    assert services.audit(store, storage_settings) == []
    run_each_date(store, storage_settings, two, SWITCH + timedelta(days=1), END)
    # the pure engine: the first upload up to SWITCH, then the second from the state reached
    before = engine.plan_range(one, engine.date_range(START, SWITCH))
    after = engine.plan_range(
        two, engine.date_range(SWITCH + timedelta(days=1), END), before.states
    )
    want = sorted(
        before.invoices + after.invoices,
        key=lambda i: (i.invoice_date, i.contract_id, i.customer_id),
    )
    invoices, log = stored(store)
    assert invoices == want
    assert key_log(log) == key_log(list(before.log + after.log))
    assert services.audit(store, storage_settings) == []


def big_book(schedule: dict[str, object]) -> Book:
    """BIG: 60 transactions of Sep 30 split between two customers (a date too large for one
    transaction: the Pending path), on a T&M line with ``schedule``."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    add(book, "Contracts", ContractId="BIG", ContractName="Big", Currency="EUR")
    for k in ("K1", "K2"):
        add(book, "Customers", ContractId="BIG", CustomerId=k, CustomerName=k, SplitPercent=50)
    add(
        book,
        "ContractLines",
        ContractId="BIG",
        LineId="L",
        LineName="Work",
        BillingMethod="Time and material",
        **schedule,
    )
    for n in range(60):
        add(
            book,
            "Transactions",
            TransactionId=f"B{n:02d}",
            ContractId="BIG",
            LineId="L",
            Class="Time",
            Date=date(2020, 9, 30),
            Amount=Decimal(10 + n),
            ReadyToInvoice="Yes",
        )
    return book


def test_pending_rows_left_on_a_date_an_upload_then_moves_away_are_cleaned_by_the_next_run(
    store, storage_settings
):
    """A run dies between its Pending rows and its commit; an upload then moves the schedule off
    that date. The index keeps the date (the contract's Pending rows must be cleaned), the redo
    of the date loads the contract, writes nothing billable for it and leaves no Pending row."""
    from invoicing.storage.errors import WriteRefused

    oct1 = date(2020, 10, 1)
    first = big_book({"Frequency": "Daily", "FirstRunDate": oct1})
    moved = big_book({"Frequency": "Weekly", "RunDay": "Friday", "FirstRunDate": oct1})
    services.import_workbook(store, workbook(first), storage_settings)

    def crash_before_pending_rows(label: str) -> None:
        if label == "pending-rows":
            raise WriteRefused("injected")

    store.write_hook = crash_before_pending_rows
    with pytest.raises(WriteRefused):
        services.run_daily(store, storage_settings, span=(oct1, oct1), workers=1)
    store.write_hook = None
    assert store.load("BIG").pending_dates() == {oct1}
    services.import_workbook(store, workbook(moved), storage_settings)
    assert services.audit(store, storage_settings) != []  # the half-done run is named
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(oct1, date(2020, 10, 9)))
    assert store.loads == ["BIG"]
    assert store.load("BIG").pending_dates() == set()
    portfolio = read_workbook(workbook(moved)).portfolio
    plan = engine.plan_range(portfolio, engine.date_range(oct1, date(2020, 10, 9)))
    invoices, log = stored(store)
    assert invoices == sorted(plan.invoices, key=lambda i: (i.invoice_date, i.customer_id))
    assert [i.invoice_date for i in invoices] == [date(2020, 10, 2)] * 2  # the first Friday
    assert key_log(log) == key_log(list(plan.log))
    assert services.audit(store, storage_settings) == []


def test_an_upload_that_dies_before_the_index_and_is_imported_again_leaves_no_stale_row(
    store, storage_settings
):
    """The second upload moves an explicit run date (Oct 5 -> Oct 6) and dies after the
    contract's rows but before the index rows. The contract's N:due record is written only
    after the index rows and the stale deletes, so it still says Oct 5: imported again, the
    upload removes the Oct 5 row. A run of Oct 5 does not load the contract; Oct 6 finds it."""
    from invoicing.storage.errors import WriteRefused
    from tests.support.workbooks import minimal_rows

    book = minimal_rows()  # L2: explicit Oct 5 and Nov 2
    services.import_workbook(store, workbook(book), storage_settings)
    changed = copy.deepcopy(book)
    changed["InvoiceSchedule"][1][2] = date(2020, 10, 6)

    def crash_at_the_index(label: str) -> None:
        if label == "due-index":
            raise WriteRefused("injected")

    store.write_hook = crash_at_the_index
    with pytest.raises(WriteRefused):
        services.import_workbook(store, workbook(changed), storage_settings)
    store.write_hook = None
    services.import_workbook(store, workbook(changed), storage_settings)
    assert services.audit(store, storage_settings) == []
    store.loads.clear()
    services.run_daily(store, storage_settings, span=(date(2020, 10, 5), date(2020, 10, 5)))
    assert store.loads == [] and stored(store)[0] == []
    services.run_daily(store, storage_settings, span=(date(2020, 10, 6), date(2020, 10, 6)))
    assert store.loads[-1] == "C1"
    portfolio = read_workbook(workbook(changed)).portfolio
    plan = engine.plan_range(portfolio, engine.date_range(date(2020, 10, 5), date(2020, 10, 6)))
    assert stored(store)[0] == sorted(plan.invoices, key=lambda i: i.customer_id)
    assert plan.invoices


@pytest.mark.parametrize("seed", [9, 10])
def test_daily_runs_with_catch_up_in_a_far_time_zone_equal_the_engine(
    store, storage_settings, seed
):
    """The timer fires at 11:00 UTC, already tomorrow in Kiritimati (UTC+14), and misses days:
    each run catches up the dates since the last one. The index is asked for the whole window
    at once; every date of it must still find its contracts."""
    import dataclasses
    from datetime import UTC, datetime

    settings = dataclasses.replace(storage_settings, timezone="Pacific/Kiritimati")
    data = workbook(hostile_book(seed))
    portfolio = read_workbook(data).portfolio
    services.import_workbook(store, data, settings)
    rnd = random.Random(seed)
    local = START
    while True:
        now = datetime.combine(local - timedelta(days=1), datetime.min.time(), UTC)
        now += timedelta(hours=11)  # 01:00 on ``local`` in Kiritimati
        services.run_daily(store, settings, now=now)
        if local == END:
            break
        local = min(END, local + timedelta(days=rnd.randint(1, 20)))
    ledger = services.ledger_entries(store)
    assert sorted(e["date"] for e in ledger) == [
        d.isoformat() for d in engine.date_range(START, END)
    ]
    assert {e["state"] for e in ledger} == {"completed"}
    plan = engine.plan_range(portfolio, engine.date_range(START, END))
    invoices, log = stored(store)
    assert invoices == sorted(
        plan.invoices, key=lambda i: (i.invoice_date, i.contract_id, i.customer_id)
    )
    assert key_log(log) == key_log(list(plan.log))
    assert services.audit(store, settings) == []
