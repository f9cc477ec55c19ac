"""Import (S5) and the daily run's choice of dates (R19, S6)."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.cli import main
from invoicing.cli.text import run_text
from invoicing.errors import InputRejected
from invoicing.settings import Settings
from tests.storage.portfolios import workbook
from tests.support.workbooks import Book, minimal_rows

D = date.fromisoformat


def run_dates(summary: services.RunSummary) -> list[date]:
    return [d.run_date for d in summary.dates]


def test_import_counts_created_updated_unchanged_per_sheet(store, storage_settings):
    book = minimal_rows()
    first = services.import_workbook(store, workbook(book), storage_settings).as_dict()["sheets"]
    assert first["Transactions"] == {"created": 3, "updated": 0, "unchanged": 0, "removed": 0}
    assert first["Customers"]["created"] == 2 and first["ContractLines"]["created"] == 3
    assert first["InvoiceSchedule"]["created"] == 2 and first["Milestones"]["created"] == 1
    book["Transactions"][1][9] = 1004  # T1 gets an explicit amount ... that disagrees? keep valid:
    book["Transactions"][1][7:10] = [8, 125.5, None]
    book["Transactions"][2][5] = "Train to Paris"  # T2's description changes
    del book["Transactions"][3]  # T3 is missing from this upload: it stays in the store
    book["Customers"][1][3], book["Customers"][2][3] = 50, 50
    second = services.import_workbook(store, workbook(book), storage_settings).as_dict()["sheets"]
    assert second["Transactions"] == {"created": 0, "updated": 1, "unchanged": 1, "removed": 0}
    assert second["Customers"] == {"created": 0, "updated": 2, "unchanged": 0, "removed": 0}
    assert second["Contracts"]["unchanged"] == 1
    part = store.load("C1")
    assert set(part.transactions) == {"T1", "T2", "T3"}
    assert part.transactions["T2"]["Desc"] == "Train to Paris"
    assert [c.split_percent for c in part.contract().customers] == [Decimal(50), Decimal(50)]


def test_importing_a_change_to_an_invoiced_transaction_exits_2_naming_row_and_invoice(
    store, storage_settings, monkeypatch, capsys, tmp_path
):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-10-31")))
    invoices, _ = services.list_invoices(store)
    holding = sorted(
        i.invoice_id
        for i in invoices
        if any(d.source_id == "T1" for ln in i.lines for d in ln.details)
    )
    assert len(holding) == 2  # T1 is split between the two customers
    before = store.load("C1")
    changed = copy.deepcopy(book)
    changed["Transactions"][1][8] = 130  # T1 (Excel row 2) gets another unit price
    changed["Transactions"][2][5] = "Train, 2nd class"  # T2 is not ready, not invoiced: fine
    path = tmp_path / "changed.xlsx"
    path.write_bytes(workbook(changed))
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection)
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    assert main(["import", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"Transactions!A2: Transaction T1 is on invoice {holding[0]} and {holding[1]}; "
        "cancel the draft first"
    ) in err
    assert err.count("cancel the draft first") == 1
    after = store.load("C1")
    assert (
        after.transactions == before.transactions and after.config == before.config
    )  # nothing written
    # once the draft is cancelled the same upload goes through
    for invoice_id in holding:
        services.cancel(store, storage_settings, invoice_id)
    assert main(["import", str(path)]) == 0
    assert store.load("C1").transactions["T1"]["Price"] == "130"


def test_an_upload_that_changes_an_invoiced_milestone_is_rejected_whole(store, storage_settings):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, today=D("2020-10-15"))
    changed = copy.deepcopy(book)
    changed["Milestones"][1][5] = 5500
    changed["Contracts"][1][1] = "Renamed"
    with pytest.raises(InputRejected) as caught:
        services.import_workbook(store, workbook(changed), storage_settings)
    [problem] = caught.value.problems
    assert (problem.sheet, problem.cell) == ("Milestones", "A2")
    assert "Milestone M1 is on invoice INV-20201015-" in problem.message
    assert store.load("C1").config["Name"] == "Adatum"


def test_the_very_first_run_does_today_only_and_a_completed_date_is_a_no_op(
    store, storage_settings
):
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    first = services.run_daily(store, storage_settings, today=D("2020-10-05"))
    assert run_dates(first) == [D("2020-10-05")]
    again = services.run_daily(store, storage_settings, today=D("2020-10-05"))
    assert again.dates == [] and again.already_done == [D("2020-10-05")]


def test_catch_up_runs_every_date_after_the_last_completed_one_in_order(store, storage_settings):
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, today=D("2020-10-01"))
    summary = services.run_daily(store, storage_settings, today=D("2020-10-06"))
    assert run_dates(summary) == [D(f"2020-10-0{d}") for d in range(2, 7)]
    ledger = services.ledger_entries(store)
    assert [e["date"] for e in ledger] == [f"2020-10-0{d}" for d in range(6, 0, -1)]
    assert all(e["state"] == "completed" for e in ledger)
    assert next(e for e in ledger if e["date"] == "2020-10-05")["invoices"] == 2


def test_catch_up_is_limited_to_INVOICE_CATCHUP_DAYS_and_reports_older_missed_dates(
    store, storage_settings
):
    settings = Settings(**{**_fields(storage_settings), "catchup_days": 3})
    services.import_workbook(store, workbook(minimal_rows()), settings)
    services.run_daily(store, settings, today=D("2020-10-01"))
    summary = services.run_daily(store, settings, today=D("2020-10-10"))
    assert run_dates(summary) == [D("2020-10-08"), D("2020-10-09"), D("2020-10-10")]
    assert summary.missed == [D(f"2020-10-0{d}") for d in range(2, 8)]
    assert "missed" in run_text(summary)


def test_a_started_but_unfinished_date_is_redone_before_later_dates(store, storage_settings):
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, today=D("2020-10-01"))
    store.upsert(
        store.globals, {"PartitionKey": "ledger", "RowKey": "2020-09-20", "State": "started"}
    )
    summary = services.run_daily(store, storage_settings, today=D("2020-10-02"))
    assert run_dates(summary) == [D("2020-09-20"), D("2020-10-02")]
    assert services.audit(store, storage_settings) == []


def test_a_store_without_a_connection_setting_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.delenv("INVOICING_STORAGE", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    assert main(["audit"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "INVOICING_STORAGE" in err


def _fields(settings: Settings) -> dict:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def _second_contract(book: dict) -> dict:
    """``book`` plus contract C2 (USD, one customer, a Daily T&M line L9)."""
    book = copy.deepcopy(book)
    book["Contracts"].append(["C2", "Other", "USD", 30])
    book["Customers"].append(["C2", "K9", "Northwind", 100, None, None])
    book["ContractLines"].append(
        [
            "C2",
            "L9",
            "Support",
            "Time and material",
            None,
            None,
            "Daily",
            None,
            D("2020-10-01"),
            None,
            None,
        ]
    )
    return book


def test_a_transaction_cannot_move_to_another_contract(store, storage_settings):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-10-31")))
    moved = _second_contract(book)
    t3 = moved["Transactions"][3]
    assert t3[0] == "T3"
    t3[1], t3[2], t3[3] = "C2", "L9", "Time"
    with pytest.raises(InputRejected) as info:
        services.import_workbook(store, workbook(moved), storage_settings)
    assert [str(p) for p in info.value.problems] == [
        "Transactions!A4: transaction T3 is already stored under contract C1; "
        "a TransactionId is unique across contracts and cannot move"
    ]
    assert store.contracts() == [("C1", 0)]  # nothing written, not even C2
    assert services.audit(store, storage_settings) == []


def test_audit_names_a_transaction_stored_under_two_contracts(store, storage_settings):
    from invoicing.storage import codec
    from invoicing.storage.keys import encode_key
    from invoicing.storage.store import upsert_op

    services.import_workbook(store, workbook(_second_contract(minimal_rows())), storage_settings)
    t1 = store.load("C1").contract().transactions[0]
    store.submit(store.table, [upsert_op(codec.transaction_entity(encode_key("C2"), t1))], "test")
    violations = services.audit(store, storage_settings)
    assert any("transaction T1 is stored under 2 contracts (C1, C2)" in v for v in violations)


def test_a_currency_change_is_refused_once_the_contract_has_items(store, storage_settings):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    book["Contracts"][1][2] = "EUR"
    del book["Transactions"][1:]
    with pytest.raises(InputRejected) as info:
        services.import_workbook(store, workbook(book), storage_settings)
    assert [str(p) for p in info.value.problems] == [
        "Contracts!A2: contract C1 has stored items in USD; its currency cannot change to EUR"
    ]


def test_not_to_exceed_cannot_drop_below_what_live_invoices_hold(store, storage_settings):
    book = minimal_rows()
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-10-31")))
    book["ContractLines"][1][5] = 50  # L1 already has T1 (1004.00) on live invoices
    with pytest.raises(InputRejected) as info:
        services.import_workbook(store, workbook(book), storage_settings)
    assert [str(p) for p in info.value.problems] == [
        "ContractLines!A2: NotToExceed 50.00 of line L1 is below the 1004.00 already on live "
        "invoices; cancel drafts first"
    ]


def test_ledger_command_shows_one_line_per_run_date(store, storage_settings, monkeypatch, capsys):
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-04"), D("2020-10-05")))
    assert main(["ledger"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["2020-10-05", "completed"],
        ["2020-10-04", "completed"],
    ]
    assert "invoices      2" in lines[0] and "USD 7.50" in lines[0]


def _big_schedule_book(name: str) -> Book:
    """Four T&M lines with 4,000 explicit schedule rows each (16,000 in one contract)."""
    book = minimal_rows()
    book["InvoiceSchedule"] = book["InvoiceSchedule"][:1]
    book["ContractLines"] = book["ContractLines"][:1]
    book["Transactions"] = book["Transactions"][:1]
    book["Milestones"] = book["Milestones"][:1]
    start = D("2020-01-01")
    for n in range(4):
        line = f"L{n}"
        book["ContractLines"].append(
            [*("C1", line, f"{name} {n}", "Time and material"), *([None] * 7)]
        )
        for i in range(4000):
            book["InvoiceSchedule"].append(["C1", line, start + timedelta(days=i), None])
        book["Transactions"].append(
            [f"BIG{n}", "C1", line, "Time", D("2020-01-05"), "w", None, None, None, 10, "Yes"]
        )
    book["Customers"][1][2] = name
    return book


def test_a_contract_with_16000_schedule_rows_previews_and_imports_alike(
    store, storage_settings, tmp_path
):
    """R20, L4: a configuration too large for one entity is stored in parts. The names are not
    ASCII (the ASCII case is the easier one): the parts must carry multi-byte text whole."""
    name = "Ünïcødé wörk ✓"
    data = workbook(_big_schedule_book(name))
    source = tmp_path / "big.xlsx"
    source.write_bytes(data)
    out = tmp_path / "p.xlsx"
    assert main(["preview", str(source), "--date", "2020-01-06", "-o", str(out)]) == 0
    services.import_workbook(store, data, storage_settings)
    part = store.load("C1")
    assert len(part.config_entities()) > 1
    contract = part.contract()
    assert contract is not None and contract.lines[0].name == f"{name} 0"
    assert sum(len(line.schedule.rows) for line in contract.lines if line.schedule) == 16000
    summary = services.run_daily(store, storage_settings, span=(D("2020-01-06"), D("2020-01-06")))
    assert summary.invoices == 2  # K1 and K2, the four lines on one invoice each
    # a smaller configuration later replaces it whole, leaving no stale part behind
    small = minimal_rows()
    services.import_workbook(store, workbook(small), storage_settings)
    assert len(store.load("C1").config_entities()) == 1
    assert services.audit(store, storage_settings) == []
