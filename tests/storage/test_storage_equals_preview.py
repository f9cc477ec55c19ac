"""R20 (preview = storage), R17 (reruns change nothing), S3 (any id round-trips), through real
Azurite and the real import, run and export code paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoicing import services
from invoicing.cli import main
from invoicing.preview import preview_workbook
from invoicing.storage.store import Store
from tests.storage.portfolios import END, START, expected, key_log, random_book, stored, workbook
from tests.support.invoices import read_invoice_workbook

SAMPLE = Path(__file__).resolve().parents[2] / "templates" / "sample-adatum.xlsx"


def test_sample_through_the_cli_exports_exactly_what_preview_writes(cli_env, tmp_path, capsys):
    exported = tmp_path / "export.xlsx"
    previewed = tmp_path / "preview.xlsx"
    assert main(["import", str(SAMPLE)]) == 0
    assert main(["run", "--from", "2020-10-01", "--to", "2020-11-30"]) == 0
    assert main(["export", "-o", str(exported)]) == 0
    assert (
        main(
            [
                "preview",
                str(SAMPLE),
                "--from",
                "2020-10-01",
                "--to",
                "2020-11-30",
                "-o",
                str(previewed),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "invoices created: 5" in out
    ours = read_invoice_workbook(exported.read_bytes())
    theirs = read_invoice_workbook(previewed.read_bytes())
    assert ours == theirs
    assert len(ours["Invoices"]) == 5
    assert main(["audit"]) == 0
    assert "audit passed" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_random_portfolio_stored_run_equals_preview_invoices_and_runlog(
    store: Store, storage_settings, seed
):
    data = workbook(random_book(seed, contracts=5, transactions=120))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    invoices, log = stored(store)
    want_invoices, want_log = expected(data)
    assert invoices == want_invoices
    assert key_log(log) == key_log(want_log)
    assert services.audit(store, storage_settings) == []


def test_export_of_a_sub_range_equals_preview_of_that_range_after_a_full_run(
    store, storage_settings
):
    data = workbook(random_book(7, contracts=3, transactions=60))
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    full, _ = expected(data)
    from datetime import date

    lo, hi = date(2020, 10, 10), date(2020, 10, 31)
    invoices, log = stored(store, lo, hi)
    assert invoices == [i for i in full if lo <= i.invoice_date <= hi]
    assert all(lo <= e.run_date <= hi for e in log)


def test_rerunning_dates_and_reimporting_change_nothing_and_audit_passes(store, storage_settings):
    data = workbook(random_book(3, contracts=4, transactions=100))
    services.import_workbook(store, data, storage_settings)
    first = services.run_daily(store, storage_settings, span=(START, END))
    before = stored(store)
    again = services.run_daily(store, storage_settings, span=(START, END))
    assert again.dates == [] and len(again.already_done) == (END - START).days + 1
    result = services.import_workbook(store, data, storage_settings)
    assert all(c["created"] == 0 and c["updated"] == 0 for c in result.sheets.values())
    services.run_daily(store, storage_settings, span=(START, END))
    assert stored(store) == before
    assert first.invoices == len(before[0]) > 0
    assert services.audit(store, storage_settings) == []


def test_ids_with_slashes_hashes_quotes_percent_plus_and_non_ascii_round_trip(
    store, storage_settings
):
    book = random_book(11, contracts=4, transactions=100, odd_ids=True)
    data = workbook(book)
    ids = {row[0] for row in book["Contracts"][1:]} | {row[0] for row in book["Transactions"][1:]}
    assert any(ch in "".join(ids) for ch in "/\\#?'\"%+é契")
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END))
    invoices, log = stored(store)
    want_invoices, want_log = expected(data)
    assert invoices == want_invoices
    assert key_log(log) == key_log(want_log)
    assert {c for c, _ in store.contracts()} == {row[0] for row in book["Contracts"][1:]}
    for invoice in invoices[:5]:
        assert services.get_invoice(store, invoice.invoice_id) == invoice
    assert services.audit(store, storage_settings) == []


def test_preview_and_storage_agree_on_the_sample_through_services(store, storage_settings):
    data = SAMPLE.read_bytes()
    services.import_workbook(store, data, storage_settings)
    summary = services.run_daily(store, storage_settings, span=(START, END))
    invoices, log = stored(store)
    preview = preview_workbook(data, START, END)
    assert invoices == sorted(
        preview.invoices, key=lambda i: (i.invoice_date, i.contract_id, i.customer_id)
    )
    assert log == list(preview.log)
    assert summary.as_dict()["invoices_created"] == 5
