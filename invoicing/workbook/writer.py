"""The invoice workbook (§X): Invoices, InvoiceLines, InvoiceLineDetails and RunLog.

Written with openpyxl in write-only mode (rows stream to disk, memory stays flat). Each sheet is an
Excel table with a frozen header row; dates are real dates in ``yyyy-mm-dd``; money is written as
the ``Decimal`` itself (openpyxl serialises it with ``%.16g``, exact for every amount Excel can
hold: 15 significant digits) in a format carrying the currency's decimals; every text from data
goes through ``invoicing.workbook.safe`` (L4), so no cell is ever a formula.

Speed (P3: at most 1.3x an unstyled write-only dump of the same rows): only cells that need a
number format or forced text typing are cell objects, and the formatted ones are *reused*, one per
column: ``WriteOnlyWorksheet.append`` serialises a row before it returns, so a cell object can
carry the next row's value once ``append`` is back. Everything else is appended as a plain value.

Print and read anywhere (X6): every sheet prints landscape, one page wide (``fitToWidth=1``,
``fitToHeight=0``, ``pageSetUpPr.fitToPage``), the header row repeated on every page
(``print_title_rows = "1:1"``), gridlines and a "sheet - page n of m" footer; the header cells are
bold with a fill of their own (LibreOffice does not draw Excel table styles); quantities, prices and
percentages carry number formats; a text column is as wide as its longest text (measured on the
rows before writing: write-only sheets take their column widths before the first row), up to
``TEXT_WIDTH_CAP``, and only the cells that do not fit (or hold a line break) are written with
``wrap_text``, so a column of short texts costs nothing extra.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

from invoicing.model import (
    BillingMethod,
    DetailStatus,
    DocumentType,
    Invoice,
    LogEntry,
    Outcome,
    SourceType,
    Status,
    TxnClass,
)
from invoicing.money import MINOR_UNITS, decimals_of
from invoicing.workbook.safe import clean_text, text_cell, text_value

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
_FITS = TEXT_WIDTH_CAP - _PAD  # characters on one line of a column at the cap


def header_width(column: str) -> int:
    """Room for the bold header and the table's filter button."""
    return len(column) + 4


def _base_width(column: str) -> int:
    width = max(header_width(column), _MIN_WIDTH)
    if column in _ENUMS:
        width = max(width, max(len(v) for v in _ENUMS[column]) + _PAD)
    elif column in DATE_COLUMNS:
        width = max(width, _DATE_WIDTH)
    return max(width, _FIXED_WIDTHS.get(column, 0))


def money_format(places: int) -> str:
    """``#,##0`` for JPY, ``#,##0.00`` for USD, ``#,##0.000`` for KWD …"""
    return "#,##0." + "0" * places if places > 0 else "#,##0"


def write_invoice_workbook(
    invoices: Iterable[Invoice],
    log: Iterable[LogEntry],
    target: str | Path | BinaryIO,
    *,
    currencies: Mapping[str, str] | None = None,
) -> None:
    """Write the invoice workbook to a path or binary file.

    ``currencies`` (contract id -> ISO code) formats RunLog amounts of contracts that have no
    invoice in ``invoices``; without it such an amount is shown with the decimals it carries.
    """
    ordered = sorted(invoices, key=_invoice_order)
    entries = sorted(log, key=_log_order)  # stable: the given order within a date and contract
    contract_currency = dict(currencies or {})
    contract_currency.update((inv.contract_id, inv.currency) for inv in ordered)

    wb = Workbook(write_only=True)
    for sheet, columns in SHEETS.items():
        ws = wb.create_sheet(sheet)
        # write-only: views, columns and print settings must be set before the first row
        ws.freeze_panes = "A2"
        print_setup(ws)
        plain = _builder(sheet, ordered, entries, contract_currency, _PLAIN)
        layout = _Layout.measure(columns, plain)
        for index, width in enumerate(layout.widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.append(_header(ws, columns))
        cells = _Styled(ws, layout.wrapped)
        count = 0
        for row in _builder(sheet, ordered, entries, contract_currency, cells):
            if cells.lines > 1:  # write-only: a row's height is read when the row is written
                height = min(MAX_ROW_HEIGHT, LINE_HEIGHT * cells.lines)
                ws.row_dimensions[count + 2].height = height
                cells.lines = 1
            ws.append(row)
            count += 1
        _add_table(ws, TABLE_NAMES[sheet], columns, count)
        if sheet in DECISIONS:
            ws.data_validations.append(_decision_list(sheet, columns, count))
    wb.save(target)


def _decision_list(sheet: str, columns: tuple[str, ...], rows: int) -> DataValidation:
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
        prompt="Leave blank, or choose " + ", ".join(DECISIONS[sheet])
        + "; then upload the workbook (decide).",
    )
    validation.add(f"{letter}2:{letter}{max(rows, 1) + 1}")
    return validation


def _builder(
    sheet: str,
    ordered: list[Invoice],
    entries: list[LogEntry],
    currencies: Mapping[str, str],
    cells: _Cells,
) -> Iterator[list[Any]]:
    if sheet == INVOICES:
        return _invoice_rows(ordered, cells)
    if sheet == LINES:
        return _line_rows(ordered, cells)
    if sheet == DETAILS:
        return _detail_rows(ordered, cells)
    return _log_rows(entries, currencies, cells)


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


def _header(ws, columns: Iterable[str]) -> list[WriteOnlyCell]:
    """The header row: the column names as text, bold, filled (X6)."""
    row = []
    for column in columns:
        cell = WriteOnlyCell(ws, column)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = HEADER_ALIGNMENT
        row.append(cell)
    return row


class _Layout:
    """Column widths from the rows' contents, and the text columns whose long cells wrap."""

    __slots__ = ("widths", "wrapped")

    def __init__(self, widths: list[int], wrapped: frozenset[str]) -> None:
        self.widths = widths
        self.wrapped = wrapped

    @classmethod
    def measure(cls, columns: tuple[str, ...], rows: Iterable[list[Any]]) -> _Layout:
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
        widths = [_base_width(c) for c in columns]
        wrapped = set()
        for i, size in longest.items():
            widths[i] = min(TEXT_WIDTH_CAP, max(widths[i], size + _PAD))
            if size + _PAD > TEXT_WIDTH_CAP or i in multiline:
                wrapped.add(columns[i])
        for i, amount in largest.items():
            # "-1,234,567.890": grouped integer digits, sign, decimal point and up to 3 places
            widths[i] = max(widths[i], len(f"{int(amount):,}") + 5 + _PAD)
        return cls(widths, frozenset(wrapped))


def invoice_workbook_bytes(
    invoices: Iterable[Invoice],
    log: Iterable[LogEntry],
    *,
    currencies: Mapping[str, str] | None = None,
) -> bytes:
    buffer = BytesIO()
    write_invoice_workbook(invoices, log, buffer, currencies=currencies)
    return buffer.getvalue()


def plain_rows(invoices: Iterable[Invoice], log: Iterable[LogEntry]) -> dict[str, list[list[Any]]]:
    """The same rows as plain Python values (str, Decimal, date, int, None), header first.

    For the P3 floor (an unstyled write-only dump of the same rows and columns) and for tests;
    not safe to write as is: text is not protected here.
    """
    ordered = sorted(invoices, key=_invoice_order)
    entries = sorted(log, key=_log_order)
    return {
        sheet: [list(columns), *_builder(sheet, ordered, entries, {}, _PLAIN)]
        for sheet, columns in SHEETS.items()
    }


# ---- rows ---------------------------------------------------------------------------------------


def _invoice_order(invoice: Invoice) -> tuple:
    return (invoice.invoice_date, invoice.contract_id, invoice.customer_id, invoice.invoice_id)


def _log_order(entry: LogEntry) -> tuple:
    return (entry.run_date, entry.contract_id)


def _places(currency: str, amount: Decimal | None = None) -> int:
    places = MINOR_UNITS.get(currency)
    if places is None:
        places = min(decimals_of(amount), 6) if amount is not None else 2
    return places


def _invoice_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text
    invoice_id, number = text("InvoiceId"), text("InvoiceNumber")
    contract_id, contract_name = text("ContractId"), text("ContractName")
    customer_id, customer_name = text("CustomerId"), text("CustomerName")
    currency = text("Currency")
    credited = text("CreditedInvoiceId")
    invoice_date, due_date = cells.date(), cells.date()
    money = cells.money()
    for inv in invoices:
        yield [
            invoice_id(inv.invoice_id),
            number(inv.invoice_number),
            inv.status.value,
            contract_id(inv.contract_id),
            contract_name(inv.contract_name),
            customer_id(inv.customer_id),
            customer_name(inv.customer_name),
            invoice_date(inv.invoice_date),
            due_date(inv.due_date),
            currency(inv.currency),
            money(inv.amount, _places(inv.currency, inv.amount)),
            len(inv.lines),
            inv.document_type.value,
            credited(inv.credited_invoice_id),
            money(inv.amount, _places(inv.currency, inv.amount)),  # NetAmount (E2)
            None,  # TaxAmount, GrossAmount: once tax (E2) is computed
            None,
            None,  # Decision: the accountant's (R23)
        ]


def _line_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text
    invoice_text, line_id, line_name = text("InvoiceId"), text("ContractLineId"), text("LineName")
    cutoff = cells.date()
    money = cells.money()
    fixed_price = BillingMethod.FIXED_PRICE
    for inv in invoices:
        invoice_id = invoice_text(inv.invoice_id)
        places = _places(inv.currency, inv.amount)
        for line in inv.lines:
            yield [
                invoice_id,
                line.line_number,
                line_id(line.contract_line_id),
                line_name(line.line_name),
                line.billing_method.value,
                None if line.billing_method is fixed_price else cutoff(line.cutoff),
                money(line.amount, places),
                None,  # TaxCategory, TaxPercent: once tax (E2) is read
                None,
            ]


def _detail_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text
    invoice_text, source_id, description = text("InvoiceId"), text("SourceId"), text("Description")
    day = cells.date()
    quantity = cells.number(QUANTITY_FORMAT)
    unit_price = cells.number(PRICE_FORMAT)
    split = cells.number(PERCENT_FORMAT)
    money = cells.money()
    milestone = SourceType.MILESTONE
    removed, invoiced = DetailStatus.REMOVED, DetailStatus.INVOICED
    # invoice details a credit note of this workbook took: shown as Credited (X5)
    credited = {
        (inv.credited_invoice_id, d.source_id)
        for inv in invoices
        if inv.is_credit_note
        for line in inv.lines
        for d in line.details
    }
    for inv in invoices:
        invoice_id = invoice_text(inv.invoice_id)
        places = _places(inv.currency, inv.amount)
        for line in inv.lines:
            number = line.line_number
            for d in line.details:
                status = d.status
                if status is removed:
                    continue  # back in the backlog: no longer on this invoice (R22)
                if status is invoiced and credited and (inv.invoice_id, d.source_id) in credited:
                    status = DetailStatus.CREDITED
                if d.source_type is milestone:
                    yield [
                        invoice_id,
                        number,
                        d.source_type.value,
                        source_id(d.source_id),
                        None,
                        day(d.date),
                        description(d.description),
                        None,
                        None,
                        split(d.split_percent),
                        money(d.amount, places),
                        status.value,
                        None,
                    ]
                else:
                    yield [
                        invoice_id,
                        number,
                        d.source_type.value,
                        source_id(d.source_id),
                        d.txn_class.value if d.txn_class is not None else None,
                        day(d.date),
                        description(d.description),
                        quantity(d.quantity),
                        unit_price(d.unit_price),
                        split(d.split_percent),
                        money(d.amount, places),
                        status.value,
                        None,
                    ]


def _log_rows(
    entries: list[LogEntry], currencies: Mapping[str, str], cells: _Cells
) -> Iterator[list[Any]]:
    text = cells.text
    contract_id, line_id, note = text("ContractId"), text("ContractLineId"), text("Note")
    day = cells.date()
    money = cells.money()
    for e in entries:
        yield [
            day(e.run_date),
            contract_id(e.contract_id),
            line_id(e.line_id),
            e.outcome.value,
            e.items,
            money(e.amount, _places(e.currency or currencies.get(e.contract_id, ""), e.amount)),
            note(e.note),
        ]


# ---- cell factories -----------------------------------------------------------------------------
# A row builder asks its factory for one converter per column: the writer's converters make safe,
# formatted cells; the plain ones return the value unchanged (plain_rows, the P3 floor).


class _Cells:
    def text(self, column: str) -> Callable[[str | None], Any]:
        raise NotImplementedError

    def date(self) -> Callable[[date | None], Any]:
        raise NotImplementedError

    def number(self, number_format: str) -> Callable[[Decimal | None], Any]:
        raise NotImplementedError

    def money(self) -> Callable[[Decimal | None, int], Any]:
        raise NotImplementedError


def _same(value: Any, *_: Any) -> Any:
    return value


class _Plain(_Cells):
    def text(self, column: str) -> Callable[[str | None], Any]:
        return _same

    def date(self) -> Callable[[date | None], Any]:
        return _same

    def number(self, number_format: str) -> Callable[[Decimal | None], Any]:
        return _same

    def money(self) -> Callable[[Decimal | None, int], Any]:
        return _same


_PLAIN = _Plain()


class _Styled(_Cells):
    """The writer's converters. ``lines`` is the most text lines a wrapped cell of the row being
    built needs (1 when none wraps): the writer sets that row's height before appending it."""

    def __init__(self, ws, wrapped: frozenset[str] = frozenset()) -> None:
        self.ws = ws
        self.wrapped = wrapped
        self.lines = 1

    def text(self, column: str) -> Callable[[str | None], Any]:
        if column in self.wrapped:
            return self._wrapped_text
        return partial(text_value, self.ws)

    def date(self) -> Callable[[date | None], Any]:
        return _ReusedCell(self.ws, DATE_FORMAT, "d")

    def number(self, number_format: str) -> Callable[[Decimal | None], Any]:
        return _ReusedCell(self.ws, number_format)

    def money(self) -> Callable[[Decimal | None, int], Any]:
        return _MoneyColumn(self.ws)

    def _wrapped_text(self, value: str | None) -> Any:
        """A text of a column at the width cap: a wrapping cell when it does not fit on one line
        (or holds a line break), else what ``text_value`` gives (a plain ``str`` most of the
        time). The wrapping cell is a ``text_cell``: the same L4 protection."""
        if value is None or value == "":
            return None
        if len(value) <= _FITS and "\n" not in value and "\r" not in value:
            return text_value(self.ws, value)
        cell = text_cell(self.ws, value)
        text = cell.value
        if not text:
            return None
        cell.alignment = WRAP
        # a line of the capped column holds about TEXT_WIDTH_CAP characters of prose (more of
        # narrow ones): the estimate errs towards a row too tall rather than clipped text
        lines = sum(-(-len(part) // TEXT_WIDTH_CAP) or 1 for part in text.split("\n"))
        if lines > self.lines:
            self.lines = lines
        return cell


class _FormattedCell(Cell):
    """The cell of one column and one number format, reused for every row (see module doc).

    openpyxl asks an appended cell for ``has_style`` and ``style_id`` twice and recomputes both
    each time (a scan and a hash of its style array); this cell's style never changes, so both are
    resolved once, into slots that shadow the base class's properties. Its value is stored with
    the type its column always has (number or date) instead of being inferred again per row.
    """

    __slots__ = ("has_style", "style_id")

    def __init__(self, ws, number_format: str, data_type: str) -> None:
        super().__init__(ws, row=1, column=1)
        self.number_format = number_format
        self.data_type = data_type
        self.has_style = True
        self.style_id = ws.parent._cell_styles.add(self._style)

    def __repr__(self) -> str:
        # ``append`` formats repr(cell) into a ValueError it raises and catches for every cell
        # object in a row; the base repr computes the coordinate and reads the sheet's title.
        return "<_FormattedCell>"


class _ReusedCell:
    """One formatted cell per column, given the next row's value each time (see module doc)."""

    __slots__ = ("cell",)

    def __init__(self, ws, number_format: str, data_type: str = "n") -> None:
        self.cell = _FormattedCell(ws, number_format, data_type)

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        cell = self.cell
        cell._value = value  # a date column holds dates, a number column Decimals and ints
        return cell


class _MoneyColumn:
    """A money column: one reused cell per number of decimals (currencies may differ by row)."""

    __slots__ = ("by_places", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.by_places: dict[int, _ReusedCell] = {}

    def __call__(self, value: Decimal | None, places: int) -> Any:
        if value is None:
            return None
        column = self.by_places.get(places)
        if column is None:
            column = self.by_places[places] = _ReusedCell(self.ws, money_format(places))
        return column(value)


# ---- tables -------------------------------------------------------------------------------------


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


def _add_table(ws, name: str, columns: Iterable[str], data_rows: int) -> None:
    with warnings.catch_warnings():
        # "In write-only mode you must add table columns manually": make_table does.
        warnings.simplefilter("ignore", UserWarning)
        ws.add_table(make_table(name, columns, data_rows))
