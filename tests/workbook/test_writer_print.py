"""X6: the invoice workbook prints and reads well in any spreadsheet program.

Every test here reads a real written workbook back with openpyxl. The last one also converts the
workbook to PDF with LibreOffice and reads the pages with ``pdftotext`` when both programs are
installed (``apt-get install libreoffice-calc poppler-utils``; ``make setup`` does not install
them): a plain ``if``, not a skip, so the openpyxl-readable half always runs.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from invoicing.workbook.layout import (
    DETAIL_COLUMNS,
    HEADER_FILL,
    INVOICE_COLUMNS,
    LINE_HEIGHT,
    MAX_ROW_HEIGHT,
    PERCENT_FORMAT,
    PRICE_FORMAT,
    QUANTITY_FORMAT,
    RUN_LOG_COLUMNS,
    SHEETS,
    TEXT_WIDTH_CAP,
    header_width,
)
from invoicing.workbook.writer import invoice_workbook_bytes, write_invoice_workbook
from tests.support.invoices import detail, invoice, line, log_entry, read_invoice_workbook


def load(data: bytes):
    return load_workbook(io.BytesIO(data))


def column_of(columns: tuple[str, ...], name: str) -> str:
    return chr(ord("A") + columns.index(name))


def many_invoices(count: int = 120) -> list:
    """Enough invoices for the Invoices sheet to need several printed pages."""
    invoices = []
    for i in range(count):
        day = (date(2020, 10, 1) + timedelta(days=i % 60)).isoformat()
        details = [
            detail(f"T{i}-{k}", "1234.50", quantity="8.25", unit_price="149.636364",
                   split="33.3333", description=f"Work item {k} of invoice {i}")
            for k in range(2)
        ]
        invoices.append(invoice(
            f"CONTRACT-{i:04d}", f"CUSTOMER-{i:03d}", day, [line(1, details)],
            contract_name=f"Contract number {i} with a longer name",
            customer_name=f"Customer {i} Incorporated",
        ))
    return invoices


def assert_print_settings(wb) -> None:
    assert wb.sheetnames == list(SHEETS)
    for ws in wb.worksheets:
        setup = ws.page_setup
        assert setup.orientation == "landscape", ws.title
        assert (setup.fitToWidth, setup.fitToHeight) == (1, 0), ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage is True, ws.title
        assert ws.print_title_rows in ("1:1", "$1:$1"), ws.title
        for cell in ws[1]:
            assert cell.value == SHEETS[ws.title][cell.column - 1]  # the header text, unchanged
            assert cell.data_type == "s"
            assert cell.font.b is True, (ws.title, cell.coordinate)
            assert cell.font.name == "Calibri"  # the body's font, bold: no fallback face
            assert cell.fill.fill_type == "solid", (ws.title, cell.coordinate)
            assert cell.fill.fgColor.rgb == HEADER_FILL.fgColor.rgb


# ---- print settings and header style ------------------------------------------------------------


def test_every_sheet_prints_landscape_one_page_wide_with_the_header_row_on_every_page():
    wb = load(invoice_workbook_bytes(many_invoices(5), [log_entry()]))
    assert_print_settings(wb)
    for ws in wb.worksheets:
        assert ws.print_options.gridLines is True  # rows stay apart where no table style is drawn
        assert ws.oddFooter.center.text == "&A - page &P of &N"
        assert ws.freeze_panes == "A2"


def test_an_empty_workbook_has_the_same_print_settings_and_header_style():
    assert_print_settings(load(invoice_workbook_bytes([], [])))


def test_the_data_rows_are_not_styled_like_the_header():
    wb = load(invoice_workbook_bytes(many_invoices(2), [log_entry()]))
    for ws in wb.worksheets:
        for cell in ws[2]:
            assert not cell.font.b, (ws.title, cell.coordinate)
            assert cell.fill.fill_type is None, (ws.title, cell.coordinate)


# ---- number formats -----------------------------------------------------------------------------


def test_quantities_prices_and_percentages_have_number_formats_and_stay_numbers():
    inv = invoice("C1", "K1", "2020-10-05", [
        line(1, [detail("T1", "1234.50", quantity="8.25", unit_price="149.636364", split="60"),
                 detail("M1", "500.00", milestone=True, split="33.3333")]),
    ])
    wb = load(invoice_workbook_bytes([inv], []))
    ws = wb["InvoiceLineDetails"]
    row = {name: ws[f"{column_of(DETAIL_COLUMNS, name)}2"] for name in DETAIL_COLUMNS}
    assert row["Quantity"].number_format == QUANTITY_FORMAT
    assert row["UnitPrice"].number_format == PRICE_FORMAT
    assert row["SplitPercent"].number_format == PERCENT_FORMAT
    assert row["Amount"].number_format == "#,##0.00"
    assert [row[c].data_type for c in ("Quantity", "UnitPrice", "SplitPercent")] == ["n"] * 3
    # SplitPercent is the number 60 (60 %), shown with a literal sign, not scaled by 100
    assert row["SplitPercent"].value == 60
    assert PERCENT_FORMAT.endswith('"%"')
    assert read_invoice_workbook(invoice_workbook_bytes([inv], []))["InvoiceLineDetails"][0][7:11] \
        == (Decimal("8.25"), Decimal("149.636364"), Decimal("60"), Decimal("1234.5"))
    milestone = {name: ws[f"{column_of(DETAIL_COLUMNS, name)}3"] for name in DETAIL_COLUMNS}
    assert milestone["SplitPercent"].number_format == PERCENT_FORMAT
    assert milestone["Quantity"].value is None and milestone["UnitPrice"].value is None


# ---- widths and wrapping ------------------------------------------------------------------------


def test_text_columns_are_as_wide_as_their_longest_text():
    name = "A contract name of exactly forty-two chars"
    assert len(name) == 42
    inv = invoice("C1", "K1", "2020-10-05", contract_name=name, customer_name="Short")
    ws = load(invoice_workbook_bytes([inv], []))["Invoices"]
    width = ws.column_dimensions[column_of(INVOICE_COLUMNS, "ContractName")].width
    assert width == 42 + 2
    customer = ws.column_dimensions[column_of(INVOICE_COLUMNS, "CustomerName")].width
    assert customer == header_width("CustomerName")  # never narrower than its header
    assert ws[f"{column_of(INVOICE_COLUMNS, 'ContractName')}2"].alignment.wrap_text is not True


def test_every_column_is_at_least_as_wide_as_its_header():
    wb = load(invoice_workbook_bytes(many_invoices(3), [log_entry()]))
    for ws in wb.worksheets:
        for cell in ws[1]:
            width = ws.column_dimensions[cell.column_letter].width
            assert width >= header_width(cell.value), (ws.title, cell.value, width)


def test_long_text_is_capped_and_wraps_only_where_it_does_not_fit():
    long = "Configuration of the invoicing rules for the customer, " * 4
    details = [detail("T1", "100.00", description=long.strip()),
               detail("T2", "100.00", description="Short")]
    inv = invoice("C1", "K1", "2020-10-05", [line(1, details)])
    ws = load(invoice_workbook_bytes([inv], []))["InvoiceLineDetails"]
    letter = column_of(DETAIL_COLUMNS, "Description")
    assert ws.column_dimensions[letter].width == TEXT_WIDTH_CAP
    assert ws[f"{letter}2"].alignment.wrap_text is True
    assert ws[f"{letter}2"].value == long.strip()  # wrapping never changes the text
    assert ws[f"{letter}3"].alignment.wrap_text is not True
    lines = -(-len(long.strip()) // TEXT_WIDTH_CAP)
    assert ws.row_dimensions[2].height == LINE_HEIGHT * lines
    assert ws.row_dimensions[3].height is None


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_line_break_wraps_and_the_longest_line_sizes_the_column(newline):
    note = newline.join(["first line", "second, longer line of the note", "third"])
    ws = load(invoice_workbook_bytes([], [log_entry(note=note)]))["RunLog"]
    letter = column_of(RUN_LOG_COLUMNS, "Note")
    assert ws.column_dimensions[letter].width == len("second, longer line of the note") + 2
    assert ws[f"{letter}2"].alignment.wrap_text is True
    assert ws[f"{letter}2"].value == note.replace("\r\n", "\n").replace("\r", "\n")
    assert ws.row_dimensions[2].height == 3 * LINE_HEIGHT


def test_a_wrapped_cell_is_still_protected_text():
    long = "=HYPERLINK(\"http://evil.example\") " + "x" * 100
    inv = invoice("C1", "K1", "2020-10-05", [line(1, [detail("T1", description=long)])])
    ws = load(invoice_workbook_bytes([inv], []))["InvoiceLineDetails"]
    cell = ws[f"{column_of(DETAIL_COLUMNS, 'Description')}2"]
    assert cell.alignment.wrap_text is True
    assert (cell.value, cell.data_type, cell.quotePrefix) == (long, "s", True)


def test_a_huge_text_gets_the_largest_row_height_excel_allows():
    inv = invoice("C1", "K1", "2020-10-05", [line(1, [detail("T1", description="y" * 30_000)])])
    ws = load(invoice_workbook_bytes([inv], []))["InvoiceLineDetails"]
    assert ws.row_dimensions[2].height == MAX_ROW_HEIGHT


def test_money_columns_are_wide_enough_for_their_largest_amount():
    big = invoice("C1", "K1", "2020-10-05", [line(1, [detail("T1", "123456789012.34")])])
    ws = load(invoice_workbook_bytes([big], []))["Invoices"]
    width = ws.column_dimensions[column_of(INVOICE_COLUMNS, "Amount")].width
    assert width >= len("123,456,789,012.34") + 1


# ---- the rendering, for real --------------------------------------------------------------------


def pdf_pages(xlsx: Path, workdir: Path) -> list[str]:
    """The workbook printed to PDF by LibreOffice headless, as the text of each page."""
    profile = workdir / "lo-profile"  # a profile of its own: tests may run in parallel
    subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless",
         "--convert-to", "pdf", "--outdir", str(workdir), str(xlsx)],
        check=True, capture_output=True, timeout=300,
    )
    pdf = workdir / (xlsx.stem + ".pdf")
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    return [page for page in text.split("\f") if page.strip()]


def test_the_invoices_sheet_prints_one_page_wide_with_its_header_on_every_page(tmp_path):
    invoices = many_invoices(120)
    path = tmp_path / "invoices.xlsx"
    write_invoice_workbook(invoices, [log_entry()], path)
    assert_print_settings(load_workbook(path))  # always: what LibreOffice and Excel read

    if shutil.which("soffice") and shutil.which("pdftotext"):  # the rendering, when installed
        pages = pdf_pages(path, tmp_path)
        invoice_pages = [p for p in pages if "Invoices - page" in p]
        assert len(invoice_pages) >= 2  # 120 rows do not fit one page: the header must repeat
        ids = {inv.invoice_id for inv in invoices}
        printed = set()
        for page in invoice_pages:
            header = page.strip().splitlines()[0].split()
            assert header == list(INVOICE_COLUMNS)  # every column on one page width, each page
            printed |= {word for word in page.split() if word in ids}
        assert printed == ids
        for sheet, columns in SHEETS.items():
            sheet_pages = [p for p in pages if f"{sheet} - page" in p]
            assert sheet_pages, sheet
            for page in sheet_pages:
                assert page.strip().splitlines()[0].split() == list(columns), sheet
