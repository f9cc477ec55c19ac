"""R19 catch-up and Missed dates, S5a unfinished imports: whatever goes wrong, nothing goes unbilled
without the ledger, the run summary, health and audit naming it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from invoicing import services
from invoicing.cli import main
from invoicing.cli.text import run_text
from invoicing.errors import BadRequest
from invoicing.model import Status
from invoicing.settings import Settings
from invoicing.storage.errors import WriteRefused
from tests.storage.portfolios import workbook
from tests.support.workbooks import HEADERS, Book

D = date.fromisoformat
SAMPLE = (Path(__file__).resolve().parents[2] / "templates" / "sample-adatum.xlsx").read_bytes()


def noon(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC)


def with_catchup(settings: Settings, days: int) -> Settings:
    return dataclasses.replace(settings, catchup_days=days)


def totals(store) -> dict[str, Decimal]:
    invoices, _ = services.list_invoices(store)
    out: dict[str, Decimal] = {}
    for inv in invoices:
        if inv.status is not Status.CANCELLED:
            out[inv.currency] = out.get(inv.currency, Decimal(0)) + inv.amount
    return out


def preview_total(start: str, end: str) -> Decimal:
    from invoicing import engine
    from invoicing.workbook.reader import read_workbook

    plan = engine.plan_range(read_workbook(SAMPLE).portfolio, engine.date_range(D(start), D(end)))
    return sum((i.amount for i in plan.invoices), Decimal(0))


# ---- R19: a run date after today is refused ----------------------------------------------------


def test_a_future_run_date_is_refused_and_writes_nothing(store, storage_settings):
    services.import_workbook(store, SAMPLE, storage_settings)
    services.run_daily(store, storage_settings, now=noon("2020-10-01"))
    ledger = services.ledger_entries(store)
    with pytest.raises(BadRequest, match="2021-10-01 is after today"):
        services.run_daily(store, storage_settings, today=D("2021-10-01"), now=noon("2020-10-02"))
    with pytest.raises(BadRequest):
        services.run_daily(
            store,
            storage_settings,
            span=(D("2020-10-02"), D("2020-10-03")),
            now=noon("2020-10-02"),
        )
    assert services.ledger_entries(store) == ledger


def test_run_with_a_date_after_today_exits_2_on_the_command_line(
    storage_settings, monkeypatch, capsys
):
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    assert main(["run", "--date", tomorrow]) == 2
    assert "is after today" in capsys.readouterr().err


def test_catch_up_covers_every_unfinished_date_of_the_window_whatever_ran_later(
    store, storage_settings
):
    """The review's case: a future date completed (as an older version allowed), then an outage
    on Oct 3-5: the Oct 6 run still catches up Oct 3, 4 and 5 (the 7,150 USD of Oct 5)."""
    services.import_workbook(store, SAMPLE, storage_settings)
    for day in ("2020-10-01", "2020-10-02"):
        services.run_daily(store, storage_settings, today=D(day))
    store.upsert(
        store.globals, {"PartitionKey": "ledger", "RowKey": "2021-10-01", "State": "completed"}
    )
    summary = services.run_daily(store, storage_settings, today=D("2020-10-06"))
    assert [d.run_date for d in summary.dates] == [D(f"2020-10-0{n}") for n in (3, 4, 5, 6)]
    oct5 = next(d for d in summary.dates if d.run_date == D("2020-10-05"))
    assert oct5.amounts == {"USD": preview_total("2020-10-05", "2020-10-05")}
    assert totals(store) == {"USD": preview_total("2020-10-01", "2020-10-06")}


# ---- R19: Missed dates -------------------------------------------------------------------------


def test_dates_older_than_the_window_are_missed_named_everywhere_until_run(store, storage_settings):
    settings = with_catchup(storage_settings, 10)
    services.import_workbook(store, SAMPLE, settings)
    services.run_daily(store, settings, today=D("2020-10-01"))
    # an outage from Oct 2 to Nov 10: the Nov 10 run catches up Nov 1-10 only
    summary = services.run_daily(store, settings, today=D("2020-11-10"))
    missed = [D("2020-10-02") + timedelta(days=i) for i in range(30)]
    assert [d.run_date for d in summary.dates] == [
        D("2020-11-01") + timedelta(days=i) for i in range(10)
    ]
    assert summary.missed == missed
    assert "missed" in run_text(summary) and "2020-10-02 .. 2020-10-31" in run_text(summary)
    ledger = {e["date"]: e["state"] for e in services.ledger_entries(store)}
    assert all(ledger[d.isoformat()] == "missed" for d in missed)
    report = services.health_report(store)
    assert report["storage"] is True and report["status"] == "attention"
    assert report["missed_dates"] == [d.isoformat() for d in missed]
    problems = services.audit(store, settings)
    assert len([p for p in problems if "was missed" in p]) == 30
    assert any("2020-10-05 was missed" in p for p in problems)
    # every later run summary names them too
    again = services.run_daily(store, settings, today=D("2020-11-11"))
    assert again.missed == missed

    services.run_daily(store, settings, span=(D("2020-10-02"), D("2020-10-31")))
    assert services.audit(store, settings) == []
    assert services.health_report(store)["status"] == "ok"
    assert services.run_daily(store, settings, today=D("2020-11-12")).missed == []
    # dates ran out of order (November first), yet every cent of the preview is billed once
    assert totals(store) == {"USD": preview_total("2020-10-01", "2020-11-12")}


def test_nothing_before_the_first_daily_run_is_ever_missed(store, storage_settings):
    settings = with_catchup(storage_settings, 3)
    services.import_workbook(store, SAMPLE, settings)
    services.run_daily(store, settings, span=(D("2020-09-01"), D("2020-09-02")))
    first = services.run_daily(store, settings, today=D("2020-10-10"))
    assert [d.run_date for d in first.dates] == [D("2020-10-10")]
    assert first.missed == []
    assert services.audit(store, settings) == []


# ---- S5a: an import that stops half-way --------------------------------------------------------


def _daily_book(split_k2: int, ready_from: int) -> Book:
    """One contract, a daily line; transactions T000..T149 dated Oct 1, ready from ``ready_from``
    on; customers K1 (100 - split_k2) and K2 (split_k2, listed only when nonzero)."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    book["Contracts"].append(["C1", "Contract", "USD", 30])
    book["Customers"].append(["C1", "K1", "First", 100 - split_k2, None, "Yes"])
    if split_k2:
        book["Customers"].append(["C1", "K2", "Second", split_k2, None, None])
    book["ContractLines"].append(
        [
            *("C1", "L", "Work", "Time and material", None, None),
            *("Daily", None, D("2020-10-01"), None, None),
        ]
    )
    for n in range(150):
        ready = "Yes" if n >= ready_from else "No"
        book["Transactions"].append(
            [f"T{n:03d}", "C1", "L", "Time", D("2020-10-01"), "w", None, None, None, 10, ready]
        )
    return book


def _invoices(store) -> list[tuple[str, str, str, Decimal]]:
    invoices, _ = services.list_invoices(store)
    return sorted(
        (inv.invoice_date.isoformat(), inv.customer_id, d.source_id, d.amount)
        for inv in invoices
        for line in inv.lines
        for d in line.details
    )


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_run_after_an_import_failed_at_its_kth_write_never_bills_the_old_splits(
    store, storage_settings, k
):
    settings = storage_settings
    before, after = workbook(_daily_book(0, 150)), workbook(_daily_book(50, 0))
    services.import_workbook(store, before, settings)
    services.run_daily(store, settings, today=D("2020-10-02"))

    def fail(label: str) -> None:
        if store.writes == k:
            raise WriteRefused(f"injected before write {k} ({label})")

    writes_before = store.writes
    k += writes_before
    store.write_hook = fail
    with pytest.raises(WriteRefused):
        services.import_workbook(store, after, settings, workers=1)
    store.write_hook = None

    summary = services.run_daily(store, settings, today=D("2020-10-03"))
    # never the old 100 % split for the items the failed upload made ready
    assert all(c == "K2" or a == Decimal("5.00") for _, c, _, a in _invoices(store))
    if k - writes_before > 1:  # the upload had begun writing: the contract is held back
        assert summary.blocked == ["C1"] and summary.invoices == 0
        assert "import never finished" in run_text(summary)
        problems = services.audit(store, settings)
        assert any("C1: an import started" in p for p in problems)
        assert any("2020-10-03 is incomplete" in p for p in problems)
        assert services.health_report(store)["unfinished_imports"] == ["C1"]

    services.import_workbook(store, after, settings)
    services.run_daily(store, settings, today=D("2020-10-04"))
    assert services.audit(store, settings) == []
    billed = _invoices(store)
    assert {s for _, _, s, _ in billed} == {f"T{n:03d}" for n in range(150)}
    assert all(a == Decimal("5.00") for _, _, _, a in billed)
    assert len(billed) == 300  # every item once per customer: K1 5.00 and K2 5.00


def test_a_contract_that_fails_is_named_and_the_others_are_invoiced(store, storage_settings):
    """One contract's bad stored data (here a damaged configuration entity) must not stop the
    run: the others are invoiced, the date stays incomplete and named until a re-import fixes it."""
    book = _daily_book(0, 0)
    other = _daily_book(0, 0)
    for sheet in ("Contracts", "Customers", "ContractLines", "Transactions"):
        for row in other[sheet][1:]:
            row = list(row)
            row[0 if sheet != "Transactions" else 1] = "C2"
            if sheet == "Transactions":
                row[0] = "X" + row[0]
            book[sheet].append(row)
    services.import_workbook(store, workbook(book), storage_settings)
    from invoicing.storage import codec
    from invoicing.storage.keys import encode_key

    # damaged where the run reads it: the main table and the work table's copy (S8)
    for table in (store.table, store.work):
        config = store.get(table, encode_key("C1"), codec.CONFIG)
        config["P0"] = "{not json"
        store.upsert(table, {k: v for k, v in config.items() if not k.startswith("_")})

    summary = services.run_daily(store, storage_settings, today=D("2020-10-02"))
    assert list(summary.failed) == ["C1"] and "JSONDecodeError" in summary.failed["C1"]
    assert summary.invoices == 1  # C2's invoice
    assert "failed, not invoiced this run" in run_text(summary)
    problems = services.audit(store, storage_settings)
    assert any("contract C1 failed" in p for p in problems)
    assert services.health_report(store)["incomplete_dates"] == ["2020-10-02"]

    services.import_workbook(store, workbook(book), storage_settings)  # the fix: upload again
    services.run_daily(store, storage_settings, today=D("2020-10-03"))
    assert services.audit(store, storage_settings) == []
    invoices, _ = services.list_invoices(store)
    assert sorted((i.contract_id, i.invoice_date.isoformat()) for i in invoices) == [
        ("C1", "2020-10-02"),
        ("C2", "2020-10-02"),
    ]
