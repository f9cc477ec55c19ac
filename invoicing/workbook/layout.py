"""The invoice workbook's layout (§X, X5, X6): sheets and columns, number formats, widths, the
header style, print settings, the Decision drop-downs and the Excel tables.

One definition for the writer, the template and the tests; ``writer.py`` fills the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

from invoicing.model import BillingMethod, DocumentType, Outcome, SourceType, Status, TxnClass
from invoicing.workbook.safe import clean_text

INVOICES = "Invoices"
LINES = "InvoiceLines"
DETAILS = "InvoiceLineDetails"
RUN_LOG = "RunLog"

INVOICE_COLUMNS = (
    "InvoiceId",
    "InvoiceNumber",
    "Status",
    "ContractId",
    "ContractName",
    "CustomerId",
    "CustomerName",
    "InvoiceDate",
    "DueDate",
    "Currency",
    "Amount",
    "LineCount",
    # X5, added at the end so the columns above keep their places
    "DocumentType",
    "CreditedInvoiceId",
    "NetAmount",
    "TaxAmount",
    "GrossAmount",
    "Decision",
)
LINE_COLUMNS = (
    "InvoiceId",
    "LineNumber",
    "ContractLineId",
    "LineName",
    "BillingMethod",
    "TransactionCutoffDate",
    "Amount",
    "TaxCategory",  # X5
    "TaxPercent",
)
DETAIL_COLUMNS = (
    "InvoiceId",
    "LineNumber",
    "SourceType",
    "SourceId",
    "Class",
    "Date",
    "Description",
    "Quantity",
    "UnitPrice",
    "SplitPercent",
    "Amount",
    "Status",  # X5
    "Decision",
)
RUN_LOG_COLUMNS = ("RunDate", "ContractId", "ContractLineId", "Outcome", "Items", "Amount", "Note")

# Sheet name -> columns, in workbook order (X1-X4).
SHEETS: dict[str, tuple[str, ...]] = {
    INVOICES: INVOICE_COLUMNS,
    LINES: LINE_COLUMNS,
    DETAILS: DETAIL_COLUMNS,
    RUN_LOG: RUN_LOG_COLUMNS,
}
# Table names are workbook-wide and may not clash with a defined name: prefix them.
TABLE_NAMES = {
    INVOICES: "tblInvoices",
    LINES: "tblInvoiceLines",
    DETAILS: "tblInvoiceLineDetails",
    RUN_LOG: "tblRunLog",
}
TABLE_STYLE = "TableStyleMedium2"

DATE_FORMAT = "yyyy-mm-dd"

# ---- X6: number formats, widths, header style, print setup -------------------------------------

QUANTITY_FORMAT = "#,##0.00####"  # 8 -> 8.00, 7.25 -> 7.25, 0.123456 -> 0.123456 (W7: <= 6 places)
PRICE_FORMAT = "#,##0.00####"  # 150 -> 150.00, 0.56 -> 0.56
PERCENT_FORMAT = '0.00##"%"'  # SplitPercent holds 60 for 60 %: a literal sign, no x100 scaling

TEXT_WIDTH_CAP = 60  # a text column grows to its longest text up to this, then its cells wrap
LINE_HEIGHT = 15  # points per line of 11-point text: the height of a row whose cells wrap
MAX_ROW_HEIGHT = 409  # Excel's largest row height, in points
# The default font, bold: a font without a name renders in some fallback face elsewhere.
HEADER_FONT = Font(name="Calibri", size=11, family=2, scheme="minor", bold=True)
HEADER_FILL = PatternFill(fill_type="solid", fgColor="D9E1F2")
HEADER_ALIGNMENT = Alignment(vertical="center")
WRAP = Alignment(wrap_text=True)  # bottom-aligned like the rest of the row
FOOTER = "&A - page &P of &N"  # sheet name, page number, page count
PRINT_TITLE_ROWS = "1:1"

# Columns holding text from data: measured to size the column, wrapped when too long.
TEXT_COLUMNS = frozenset(
    {
        "InvoiceId",
        "InvoiceNumber",
        "ContractId",
        "ContractName",
        "CustomerId",
        "CustomerName",
        "Currency",
        "ContractLineId",
        "LineName",
        "SourceId",
        "Description",
        "Note",
        "CreditedInvoiceId",
    }
)
MONEY_COLUMNS = frozenset({"Amount", "NetAmount", "TaxAmount", "GrossAmount"})
# R23: what an accountant may type in the Decision columns (a drop-down on each)
DECISIONS = {
    "Invoices": ("Confirm", "Cancel", "Credit"),
    "InvoiceLineDetails": ("Remove", "WriteOff", "Credit", "CreditWriteOff"),
}
DATE_COLUMNS = frozenset({"InvoiceDate", "DueDate", "TransactionCutoffDate", "Date", "RunDate"})
# Columns of enumeration values: as wide as their longest value.
_ENUMS: dict[str, tuple[str, ...]] = {
    "Status": tuple(m.value for m in Status),
    "BillingMethod": tuple(m.value for m in BillingMethod),
    "SourceType": tuple(m.value for m in SourceType),
    "Class": tuple(m.value for m in TxnClass),
    "Outcome": tuple(m.value for m in Outcome),
    "DocumentType": tuple(m.value for m in DocumentType),
    "Decision": ("CreditWriteOff",),
}
_FIXED_WIDTHS = {"Quantity": 12, "UnitPrice": 14, "SplitPercent": 13}
_DATE_WIDTH = 12  # yyyy-mm-dd
_MIN_WIDTH = 8
_PAD = 2  # characters of air around a value
FITS = TEXT_WIDTH_CAP - _PAD  # characters on one line of a column at the cap


def header_width(column: str) -> int:
    """Room for the bold header and the table's filter button."""
    return len(column) + 4


def base_width(column: str) -> int:
    width = max(header_width(column), _MIN_WIDTH)
    if column in _ENUMS:
        width = max(width, max(len(v) for v in _ENUMS[column]) + _PAD)
    elif column in DATE_COLUMNS:
        width = max(width, _DATE_WIDTH)
    return max(width, _FIXED_WIDTHS.get(column, 0))


def money_format(places: int) -> str:
    """``#,##0`` for JPY, ``#,##0.00`` for USD, ``#,##0.000`` for KWD …"""
    return "#,##0." + "0" * places if places > 0 else "#,##0"


def decision_list(sheet: str, columns: tuple[str, ...], rows: int) -> DataValidation:
    """The Decision column's drop-down (R23, X5): blank or one of the values allowed there."""
    letter = get_column_letter(columns.index("Decision") + 1)
    validation = DataValidation(
        type="list",
        formula1='"' + ",".join(DECISIONS[sheet]) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="Decision",
        error="Choose one of: " + ", ".join(DECISIONS[sheet]) + " (or leave it blank).",
        showInputMessage=True,
        promptTitle="Decision",
        prompt="Leave blank, or choose "
        + ", ".join(DECISIONS[sheet])
        + "; then upload the workbook (decide).",
    )
    validation.add(f"{letter}2:{letter}{max(rows, 1) + 1}")
    return validation


def print_setup(ws) -> None:
    """X6: landscape, one page wide and as many pages tall as it takes, header on every page."""
    setup = ws.page_setup
    setup.orientation = "landscape"
    setup.fitToWidth = 1
    setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = PRINT_TITLE_ROWS
    ws.print_options.gridLines = True  # LibreOffice prints no table style: lines keep rows apart
    ws.oddFooter.center.text = FOOTER


def header_row(ws, columns: Iterable[str]) -> list[WriteOnlyCell]:
    """The header row: the column names as text, bold, filled (X6)."""
    row = []
    for column in columns:
        cell = WriteOnlyCell(ws, column)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = HEADER_ALIGNMENT
        row.append(cell)
    return row


class Layout:
    """Column widths from the rows' contents, and the text columns whose long cells wrap."""

    __slots__ = ("widths", "wrapped")

    def __init__(self, widths: list[int], wrapped: frozenset[str]) -> None:
        self.widths = widths
        self.wrapped = wrapped

    @classmethod
    def measure(cls, columns: tuple[str, ...], rows: Iterable[list[Any]]) -> Layout:
        texts = [i for i, c in enumerate(columns) if c in TEXT_COLUMNS]
        money = [i for i, c in enumerate(columns) if c in MONEY_COLUMNS]
        longest = dict.fromkeys(texts, 0)
        multiline: set[int] = set()
        largest = dict.fromkeys(money, Decimal(0))
        for row in rows:
            for i in texts:
                value = row[i]
                if value:
                    if "\n" in value or "\r" in value:  # it wraps: its longest line sizes it
                        multiline.add(i)
                        size = max(map(len, clean_text(value).split("\n")))
                    else:
                        size = len(value)
                    if size > longest[i]:
                        longest[i] = size
            for i in money:
                value = row[i]
                if value is not None and abs(value) > largest[i]:
                    largest[i] = abs(value)
        widths = [base_width(c) for c in columns]
        wrapped = set()
        for i, size in longest.items():
            widths[i] = min(TEXT_WIDTH_CAP, max(widths[i], size + _PAD))
            if size + _PAD > TEXT_WIDTH_CAP or i in multiline:
                wrapped.add(columns[i])
        for i, amount in largest.items():
            # "-1,234,567.890": grouped integer digits, sign, decimal point and up to 3 places
            widths[i] = max(widths[i], len(f"{int(amount):,}") + 5 + _PAD)
        return cls(widths, frozenset(wrapped))


def table_ref(columns: int, data_rows: int) -> str:
    """The table's range. Excel rejects a table with a header row and no data row ("Repaired
    Records: Table"), so an empty sheet's table spans the header and one blank row - exactly what
    Excel itself shows for an emptied table. Readers skip blank rows anyway (§W)."""
    return f"A1:{get_column_letter(columns)}{1 + max(data_rows, 1)}"


def make_table(name: str, columns: Iterable[str], data_rows: int) -> Table:
    names = list(columns)
    ref = table_ref(len(names), data_rows)
    table = Table(displayName=name, ref=ref)
    # Write-only sheets cannot be read back, so the columns are named here, not from the cells.
    table.tableColumns = [TableColumn(id=i, name=n) for i, n in enumerate(names, start=1)]
    table.autoFilter = AutoFilter(ref=ref)
    table.tableStyleInfo = TableStyleInfo(name=TABLE_STYLE, showRowStripes=True)
    return table
