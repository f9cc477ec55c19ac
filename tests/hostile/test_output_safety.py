"""L4 end to end: dangerous text from an input workbook comes back, after import -> run -> export
and after preview, as the same visible text in a text cell, never as a formula."""

from __future__ import annotations

from datetime import date

import openpyxl
import pytest

from invoicing.cli import main
from invoicing.settings import Settings
from tests.support.invoices import formula_cells
from tests.support.workbooks import Text, minimal_rows, xlsx

# cell text as stored in the xlsx -> text an accountant sees. Excel stores a control character as
# an _xHHHH_ escape (XML 1.0 cannot hold it); the reader decodes it, the writer drops it.
DANGEROUS = {
    "=1+1": "=1+1",
    "+1": "+1",
    "-1": "-1",
    "@SUM(A1)": "@SUM(A1)",
    "\t=1": "\t=1",
    "#N/A": "#N/A",
    '=HYPERLINK("http://evil.example","click")': '=HYPERLINK("http://evil.example","click")',
    "bell_x0007_and_x001B_escape": "bellandescape",
}


@pytest.fixture
def dangerous_book(tmp_path) -> str:
    book = minimal_rows()
    for i, text in enumerate(DANGEROUS):
        book["Transactions"].append(
            [
                f"X{i}",
                "C1",
                "L1",
                "Time",
                date(2020, 10, 2),
                Text(text),
                Text(text),
                1,
                1,
                None,
                "Yes",
            ]
        )
    path = tmp_path / "dangerous.xlsx"
    path.write_bytes(xlsx(book))
    return str(path)


def _descriptions(path) -> dict[str, tuple[str, str]]:
    ws = openpyxl.load_workbook(path)["InvoiceLineDetails"]
    header = [c.value for c in ws[1]]
    source, description = header.index("SourceId"), header.index("Description")
    return {
        row[source].value: (row[description].data_type, row[description].value)
        for row in ws.iter_rows(min_row=2)
    }


def _check(path) -> None:
    assert formula_cells(path.read_bytes()) == []
    seen = _descriptions(path)
    for i, visible in enumerate(DANGEROUS.values()):
        assert seen[f"X{i}"] == ("s", visible), f"X{i}"


def test_dangerous_text_survives_import_run_export_as_text(
    dangerous_book, tmp_path, storage_settings: Settings, monkeypatch
):
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    assert main(["import", dangerous_book]) == 0
    assert main(["run", "--from", "2020-10-01", "--to", "2020-10-31"]) == 0
    out = tmp_path / "export.xlsx"
    assert main(["export", "-o", str(out)]) == 0
    _check(out)


def test_dangerous_text_survives_preview_as_text(dangerous_book, tmp_path):
    out = tmp_path / "preview.xlsx"
    assert (
        main(
            [
                "preview",
                dangerous_book,
                "--from",
                "2020-10-01",
                "--to",
                "2020-10-31",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    _check(out)
