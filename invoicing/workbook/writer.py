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
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

from invoicing.model import BillingMethod, Invoice, LogEntry, SourceType
from invoicing.money import MINOR_UNITS, decimals_of
from invoicing.workbook.safe import text_value

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
)
LINE_COLUMNS = (
    "InvoiceId",
    "LineNumber",
    "ContractLineId",
    "LineName",
    "BillingMethod",
    "TransactionCutoffDate",
    "Amount",
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

_WIDTHS = {
    "InvoiceId": 24,
    "InvoiceNumber": 15,
    "Status": 11,
    "ContractId": 16,
    "ContractName": 32,
    "CustomerId": 16,
    "CustomerName": 28,
    "InvoiceDate": 12,
    "DueDate": 12,
    "Currency": 9,
    "Amount": 15,
    "LineCount": 10,
    "LineNumber": 11,
    "ContractLineId": 16,
    "LineName": 28,
    "BillingMethod": 18,
    "TransactionCutoffDate": 21,
    "SourceType": 12,
    "SourceId": 16,
    "Class": 10,
    "Date": 12,
    "Description": 40,
    "Quantity": 10,
    "UnitPrice": 12,
    "SplitPercent": 12,
    "RunDate": 12,
    "Outcome": 10,
    "Items": 8,
    "Note": 60,
}


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
        ws.freeze_panes = "A2"  # write-only: views and columns must be set before the first row
        for index, column in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(index)].width = _WIDTHS.get(column, 14)
        ws.append(list(columns))
        cells = _Styled(ws)
        if sheet == INVOICES:
            rows = _invoice_rows(ordered, cells)
        elif sheet == LINES:
            rows = _line_rows(ordered, cells)
        elif sheet == DETAILS:
            rows = _detail_rows(ordered, cells)
        else:
            rows = _log_rows(entries, contract_currency, cells)
        count = 0
        for row in rows:
            ws.append(row)
            count += 1
        _add_table(ws, TABLE_NAMES[sheet], columns, count)
    wb.save(target)


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
    cells = _Plain()
    return {
        INVOICES: [list(INVOICE_COLUMNS), *_invoice_rows(ordered, cells)],
        LINES: [list(LINE_COLUMNS), *_line_rows(ordered, cells)],
        DETAILS: [list(DETAIL_COLUMNS), *_detail_rows(ordered, cells)],
        RUN_LOG: [list(RUN_LOG_COLUMNS), *_log_rows(entries, {}, cells)],
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
    text = cells.text()
    invoice_date, due_date = cells.date(), cells.date()
    money = cells.money()
    for inv in invoices:
        yield [
            text(inv.invoice_id),
            text(inv.invoice_number),
            inv.status.value,
            text(inv.contract_id),
            text(inv.contract_name),
            text(inv.customer_id),
            text(inv.customer_name),
            invoice_date(inv.invoice_date),
            due_date(inv.due_date),
            text(inv.currency),
            money(inv.amount, _places(inv.currency, inv.amount)),
            len(inv.lines),
        ]


def _line_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text()
    cutoff = cells.date()
    money = cells.money()
    fixed_price = BillingMethod.FIXED_PRICE
    for inv in invoices:
        invoice_id = text(inv.invoice_id)
        places = _places(inv.currency, inv.amount)
        for line in inv.lines:
            yield [
                invoice_id,
                line.line_number,
                text(line.contract_line_id),
                text(line.line_name),
                line.billing_method.value,
                None if line.billing_method is fixed_price else cutoff(line.cutoff),
                money(line.amount, places),
            ]


def _detail_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text()
    day = cells.date()
    money = cells.money()
    milestone = SourceType.MILESTONE
    for inv in invoices:
        invoice_id = text(inv.invoice_id)
        places = _places(inv.currency, inv.amount)
        for line in inv.lines:
            number = line.line_number
            for d in line.details:
                if d.source_type is milestone:
                    yield [
                        invoice_id,
                        number,
                        d.source_type.value,
                        text(d.source_id),
                        None,
                        day(d.date),
                        text(d.description),
                        None,
                        None,
                        d.split_percent,
                        money(d.amount, places),
                    ]
                else:
                    yield [
                        invoice_id,
                        number,
                        d.source_type.value,
                        text(d.source_id),
                        d.txn_class.value if d.txn_class is not None else None,
                        day(d.date),
                        text(d.description),
                        d.quantity,
                        d.unit_price,
                        d.split_percent,
                        money(d.amount, places),
                    ]


def _log_rows(
    entries: list[LogEntry], currencies: Mapping[str, str], cells: _Cells
) -> Iterator[list[Any]]:
    text = cells.text()
    day = cells.date()
    money = cells.money()
    for e in entries:
        yield [
            day(e.run_date),
            text(e.contract_id),
            text(e.line_id),
            e.outcome.value,
            e.items,
            money(e.amount, _places(e.currency or currencies.get(e.contract_id, ""), e.amount)),
            text(e.note),
        ]


# ---- cell factories -----------------------------------------------------------------------------
# A row builder asks its factory for one converter per column: the writer's converters make safe,
# formatted cells; the plain ones return the value unchanged (plain_rows, the P3 floor).


class _Cells:
    def text(self) -> Callable[[str | None], Any]:
        raise NotImplementedError

    def date(self) -> Callable[[date | None], Any]:
        raise NotImplementedError

    def money(self) -> Callable[[Decimal | None, int], Any]:
        raise NotImplementedError


def _same(value: Any, *_: Any) -> Any:
    return value


class _Plain(_Cells):
    def text(self) -> Callable[[str | None], Any]:
        return _same

    def date(self) -> Callable[[date | None], Any]:
        return _same

    def money(self) -> Callable[[Decimal | None, int], Any]:
        return _same


class _Styled(_Cells):
    def __init__(self, ws) -> None:
        self.ws = ws

    def text(self) -> Callable[[str | None], Any]:
        return partial(text_value, self.ws)

    def date(self) -> Callable[[date | None], Any]:
        return _ReusedCell(self.ws, DATE_FORMAT)

    def money(self) -> Callable[[Decimal | None, int], Any]:
        return _MoneyColumn(self.ws)


class _ReusedCell:
    """One formatted cell per column, given the next row's value each time (see module doc)."""

    __slots__ = ("cell",)

    def __init__(self, ws, number_format: str) -> None:
        self.cell = WriteOnlyCell(ws)
        self.cell.number_format = number_format

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        cell = self.cell
        cell.value = value
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
