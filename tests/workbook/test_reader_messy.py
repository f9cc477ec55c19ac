"""Messy finance workbooks (SPEC W12, issue 13): real .xlsx files, as other programs write them.

Where a case comes from Excel (a formula's saved value, a table's totals row), the openpyxl file
gets the exact cell XML Excel writes (``<f>…</f><v>value</v>``: openpyxl saves no value).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.table import Table

from invoicing.errors import InputRejected
from invoicing.workbook.reader import read_workbook
from tests.support.workbooks import Book, Formatted, add, minimal_rows, put, xlsx

ROOT = Path(__file__).resolve().parents[2]


def problems_of(data: bytes) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read_workbook(data)
    return [str(p) for p in caught.value.problems]


def problems(book: Book) -> list[str]:
    return problems_of(xlsx(book))


def sheet_member(data: bytes, sheet: str) -> str:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return f"xl/worksheets/sheet{wb.sheetnames.index(sheet) + 1}.xml"


def with_saved_values(data: bytes, sheet: str, values: dict[str, str]) -> bytes:
    """The workbook as Excel saves it: each formula cell of ``values`` carries its saved value."""
    member = sheet_member(data, sheet)
    source = zipfile.ZipFile(io.BytesIO(data))
    xml = source.read(member).decode()
    for ref, value in values.items():
        xml, n = re.subn(
            rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f><v\s*>\s*</v>', rf"\1<f>\2</f><v>{value}</v>", xml
        )
        assert n == 1, ref
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = xml.encode() if info.filename == member else source.read(info.filename)
            target.writestr(info, body)
    return out.getvalue()


# ---- (a) a sheet named close to an input sheet ---------------------------------------------------


@pytest.mark.parametrize("name", ["Transaction", "Transactions 2020", "Tansactions"])
def test_a_misnamed_sheet_is_an_error_naming_the_sheet_it_probably_is(name):
    book = minimal_rows()
    book[name] = book.pop("Transactions")
    assert problems(book) == [
        f"{name}: this sheet is not read, its name is not an input sheet's: if it holds the "
        'Transactions rows, rename it "Transactions"; otherwise remove it'
    ]


@pytest.mark.parametrize("name", ["transactions", "TRANSACTIONS", "Trans actions", "trans_actions"])
def test_case_spacing_and_underscores_do_not_matter_in_sheet_names(name):
    book = minimal_rows()
    book[name] = book.pop("Transactions")
    (contract,) = read_workbook(xlsx(book)).portfolio.contracts
    assert len(contract.transactions) == 3


def test_a_misnamed_sheet_exits_2_on_the_command_line(tmp_path):
    book = minimal_rows()
    book["Transactions 2020"] = book.pop("Transactions")
    path = tmp_path / "book.xlsx"
    path.write_bytes(xlsx(book))
    done = subprocess.run(
        [sys.executable, "-m", "invoicing", "preview", str(path), "--date", "2020-10-31",
         "-o", str(tmp_path / "out.xlsx")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert 'rename it "Transactions"' in done.stderr
    assert not (tmp_path / "out.xlsx").exists()


# ---- (b) totals rows -----------------------------------------------------------------------------


def _sum_row_book() -> bytes:
    book = minimal_rows()
    # Amount of T1 is Quantity x UnitPrice; give the column's =SUM below the data
    add(book, "Transactions", Quantity="=SUM(H2:H4)", Amount="=SUM(J2:J4)")
    return with_saved_values(xlsx(book), "Transactions", {"H5": "11", "J5": "107.4"})


def test_a_sum_row_under_the_data_is_skipped_with_a_warning():
    plain = read_workbook(xlsx(minimal_rows()))
    read = read_workbook(_sum_row_book())
    assert read.portfolio == plain.portfolio
    assert "Transactions!A5: a totals row (only formulas over the data) is not read" in (
        read.warnings
    )


def test_an_excel_tables_totals_row_is_skipped_with_a_warning():
    book = minimal_rows()
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet, rows in book.items():
        ws = wb.create_sheet(sheet)
        for row in rows:
            ws.append(row)
    ws = wb["Transactions"]
    ws.append(["Total", None, None, None, None, None, None, "=SUBTOTAL(109,H2:H4)", None,
               "=SUBTOTAL(109,J2:J4)", None])  # fmt: skip
    table = Table(displayName="tblTransactions", ref="A1:K5", totalsRowCount=1)
    ws.add_table(table)
    out = io.BytesIO()
    wb.save(out)
    data = with_saved_values(out.getvalue(), "Transactions", {"H5": "11", "J5": "107.4"})
    assert b'totalsRowCount="1"' in zipfile.ZipFile(io.BytesIO(data)).read("xl/tables/table1.xml")
    read = read_workbook(data)
    assert read.portfolio == read_workbook(xlsx(minimal_rows())).portfolio
    assert any("a totals row" in w for w in read.warnings)


def test_a_formula_in_a_data_row_is_data():
    book = minimal_rows()
    put(book, "Transactions", 4, "Amount", "=H4*I4")
    data = with_saved_values(xlsx(book), "Transactions", {"J4": "7.5"})
    (contract,) = read_workbook(data).portfolio.contracts
    assert len(contract.transactions) == 3


# ---- (d) dates with a time of day ----------------------------------------------------------------


def test_midnight_is_that_date_in_a_date_cell_or_iso_text():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "2020-10-02 00:00:00")
    put(book, "Transactions", 3, "Date", datetime(2020, 10, 3, 0, 0))
    put(book, "InvoiceSchedule", 2, "InvoiceRunDate", "2020-10-05T00:00")
    (contract,) = read_workbook(xlsx(book)).portfolio.contracts
    days = {t.transaction_id: t.date for t in contract.transactions}
    assert days["T1"] == date(2020, 10, 2) and days["T2"] == date(2020, 10, 3)


def test_a_real_time_of_day_stays_an_error():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "2020-10-02 09:30")
    put(book, "Transactions", 3, "Date", datetime(2020, 10, 3, 9, 30))
    assert problems(book) == [
        'Transactions!E2: date "2020-10-02 09:30" has a time of day; give the date only',
        'Transactions!E3: date "2020-10-03 09:30:00" has a time of day; give the date only',
    ]


def test_thousands_of_the_same_error_in_one_column_are_summarised():
    book = minimal_rows()
    for i in range(5000):
        add(book, "Transactions", TransactionId=f"X{i}", ContractId="C1", LineId="L1",
            Class="Time", Date=datetime(2020, 10, 1, 8, 0), Amount=1)  # fmt: skip
    with pytest.raises(InputRejected) as caught:
        read_workbook(xlsx(book))
    listed = [str(p) for p in caught.value.problems]
    assert len(listed) == 6
    assert listed[0] == (
        'Transactions!E5: date "2020-10-01 08:00:00" has a time of day; give the date only'
    )
    assert listed[-1] == (
        "Transactions!E10: … and 4,995 more like it in this column (from this row on)"
    )
    assert caught.value.total == 5000


# ---- (e) the header below a title ----------------------------------------------------------------


def test_a_title_above_the_header_is_reported_as_such():
    book = minimal_rows()
    book["Transactions"][0:0] = [["Timesheet export, October 2020"], []]
    assert problems(book) == [
        "Transactions!A3: the header must be in row 1; found it in row 3 (delete the rows above it)"
    ]


# ---- (f) a formula without a saved value ---------------------------------------------------------


def test_a_formula_with_no_saved_value_says_the_file_was_never_recalculated():
    book = minimal_rows()
    put(book, "Transactions", 3, "Amount", "=1+1")  # openpyxl saves no value: never calculated
    assert problems(book) == [
        "Transactions!J3: the cell's formula has no saved value: the file was never "
        "recalculated; open it in Excel or LibreOffice, let it calculate, and save it again"
    ]


# ---- (h) one wave --------------------------------------------------------------------------------


def test_one_bad_currency_does_not_hide_five_independent_errors():
    book = minimal_rows()
    put(book, "Contracts", 2, "Currency", "XYZ")
    put(book, "Customers", 2, "SplitPercent", 50)  # 50 + 40
    put(book, "ContractLines", 2, "NotToExceed", 100.123)
    put(book, "Transactions", 2, "Class", "Material")  # L1 bills Time, Expense
    put(book, "Transactions", 3, "Amount", 99.999)
    put(book, "Transactions", 4, "Amount", 8)  # 3 x 2.5 = 7.50
    assert problems(book) == [
        'Contracts!C2: Currency "XYZ" is not an active ISO 4217 code',
        'Customers!D2: splits of contract "C1" sum to 90, not 100',
        "ContractLines!F2: NotToExceed 100.123 has more than 2 decimals",
        'Transactions!D2: line "L1" of contract "C1" does not bill Material (it bills Time, '
        "Expense)",
        "Transactions!J3: Amount 99.999 has more than 2 decimals",
        "Transactions!J4: Amount 8.00 does not match Quantity × UnitPrice = 7.50",
    ]


# ---- (c) percent-formatted cells -----------------------------------------------------------------


def _percent_book() -> bytes:
    book = minimal_rows()
    put(book, "Customers", 2, "SplitPercent", Formatted(0.6, "0%"))
    put(book, "Customers", 3, "SplitPercent", Formatted(0.4, "0.00%"))
    put(book, "Contracts", 2, "TaxPercent", Formatted(0.2, "0%"))
    put(book, "ContractLines", 2, "TaxPercent", Formatted(0.075, '0.0" "%'))
    return xlsx(book)


def test_split_and_tax_percent_formatted_as_percentages_read_as_percent():
    (contract,) = read_workbook(_percent_book()).portfolio.contracts
    assert [c.split_percent for c in contract.customers] == [Decimal(60), Decimal(40)]
    assert contract.tax_percent == Decimal(20)
    lines = {x.line_id: x.tax_percent for x in contract.lines}
    assert lines == {"L1": Decimal("7.5"), "L2": Decimal(20), "L3": Decimal(20)}


def test_the_same_book_as_plain_numbers_gives_the_same_contract():
    book = minimal_rows()
    put(book, "Contracts", 2, "TaxPercent", 20)
    put(book, "ContractLines", 2, "TaxPercent", 7.5)
    assert read_workbook(xlsx(book)).portfolio == read_workbook(_percent_book()).portfolio


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_percent_cells_re_saved_by_libreoffice_still_read_as_percent(tmp_path):
    source = tmp_path / "in.xlsx"
    source.write_bytes(_percent_book())
    out = tmp_path / "out"
    subprocess.run(
        ["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo", "--convert-to",
         "xlsx", "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    resaved = (out / "in.xlsx").read_bytes()
    assert read_workbook(resaved).portfolio == read_workbook(_percent_book()).portfolio


# ---- (g) warnings with the errors ----------------------------------------------------------------


def _warned_and_wrong() -> bytes:
    book = minimal_rows()
    book["Contracts"][0].append("Notes")  # an unknown column: a warning
    put(book, "Transactions", 2, "Date", "31/12/2020")  # an error
    return xlsx(book)


def test_warnings_come_with_the_errors_on_the_command_line(tmp_path):
    path = tmp_path / "book.xlsx"
    path.write_bytes(_warned_and_wrong())
    done = subprocess.run(
        [sys.executable, "-m", "invoicing", "preview", str(path), "--date", "2020-10-31",
         "-o", str(tmp_path / "out.xlsx")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert 'Transactions!E2: date "31/12/2020" is not YYYY-MM-DD or an Excel date' in done.stderr
    assert 'warning: Contracts!F1: unknown column "Notes" ignored' in done.stderr


def test_warnings_come_with_the_errors_in_the_422_body():
    import json

    from invoicing.functions.http import answer

    with pytest.raises(InputRejected) as caught:
        read_workbook(_warned_and_wrong())
    response = answer(caught.value, "preview")  # what every HTTP handler answers with it
    assert response.status_code == 422
    body = json.loads(response.get_body())
    assert 'Contracts!F1: unknown column "Notes" ignored' in body["warnings"]
    assert body["errors"][0]["cell"] == "E2"
