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
from openpyxl.cell import Cell
from openpyxl.utils import get_column_letter

from invoicing.model import (
    BillingMethod,
    DetailStatus,
    Invoice,
    LogEntry,
    SourceType,
)
from invoicing.money import MINOR_UNITS, decimals_of
from invoicing.tax import invoice_tax
from invoicing.workbook.layout import (
    DATE_FORMAT,
    DECISIONS,
    DETAILS,
    FITS,
    HEADER_FILL,
    HEADER_FONT,
    INVOICES,
    LINE_HEIGHT,
    LINES,
    MAX_ROW_HEIGHT,
    PERCENT_FORMAT,
    PRICE_FORMAT,
    QUANTITY_FORMAT,
    SHEETS,
    TABLE_NAMES,
    TEXT_WIDTH_CAP,
    WRAP,
    Layout,
    decision_list,
    header_row,
    header_width,
    make_table,
    money_format,
    print_setup,
)
from invoicing.workbook.safe import text_cell, text_value

# The template styles its header like the invoice workbook's (X6), through these names.
__all__ = [
    "DATE_FORMAT",
    "HEADER_FILL",
    "HEADER_FONT",
    "LINE_HEIGHT",
    "header_width",
    "invoice_order",
    "invoice_workbook_bytes",
    "log_order",
    "make_table",
    "plain_rows",
    "print_setup",
    "write_invoice_chunks",
    "write_invoice_workbook",
]


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
    write_invoice_chunks([(invoices, log)], target, currencies=currencies)


def write_invoice_chunks(
    chunks: Iterable[tuple[Iterable[Invoice], Iterable[LogEntry]]],
    target: str | Path | BinaryIO,
    *,
    currencies: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Write the invoice workbook from ``chunks`` of (invoices, RunLog entries) that follow
    each other in the workbook's order (``services.iter_invoices`` merges an export's contracts
    into such chunks), so that only one chunk is in memory: write-only sheets stream every
    appended row to a file of their own, and the four sheets are appended to side by side.
    The column widths are measured on the first chunk (write-only: they precede the first row).
    Returns the data rows written per sheet."""
    contract_currency = dict(currencies or {})
    pending = iter(chunks)
    first = next(pending, ((), ()))
    wb = Workbook(write_only=True)
    sheets: dict[str, tuple[Any, _Styled]] = {}
    ordered, entries = _sorted_chunk(first, contract_currency)
    for sheet, columns in SHEETS.items():
        ws = wb.create_sheet(sheet)
        # write-only: views, columns and print settings must be set before the first row
        ws.freeze_panes = "A2"
        print_setup(ws)
        plain = _builder(sheet, ordered, entries, contract_currency, _PLAIN)
        layout = Layout.measure(columns, plain)
        for index, width in enumerate(layout.widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.append(header_row(ws, columns))
        sheets[sheet] = (ws, _Styled(ws, layout.wrapped))
    counts = dict.fromkeys(SHEETS, 0)
    while True:
        for sheet, (ws, cells) in sheets.items():
            count = counts[sheet]
            for row in _builder(sheet, ordered, entries, contract_currency, cells):
                if cells.lines > 1:  # write-only: a row's height is read when it is written
                    height = min(MAX_ROW_HEIGHT, LINE_HEIGHT * cells.lines)
                    ws.row_dimensions[count + 2].height = height
                    cells.lines = 1
                ws.append(row)
                count += 1
            counts[sheet] = count
        chunk = next(pending, None)
        if chunk is None:
            break
        ordered, entries = _sorted_chunk(chunk, contract_currency)
    for sheet, (ws, _) in sheets.items():
        _add_table(ws, TABLE_NAMES[sheet], SHEETS[sheet], counts[sheet])
        if sheet in DECISIONS:
            ws.data_validations.append(decision_list(sheet, SHEETS[sheet], counts[sheet]))
    wb.save(target)
    return counts


def _sorted_chunk(
    chunk: tuple[Iterable[Invoice], Iterable[LogEntry]], contract_currency: dict[str, str]
) -> tuple[list[Invoice], list[LogEntry]]:
    ordered = sorted(chunk[0], key=invoice_order)
    entries = sorted(chunk[1], key=log_order)  # stable: the given order within a date, contract
    contract_currency.update((inv.contract_id, inv.currency) for inv in ordered)
    return ordered, entries


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
    ordered = sorted(invoices, key=invoice_order)
    entries = sorted(log, key=log_order)
    return {
        sheet: [list(columns), *_builder(sheet, ordered, entries, {}, _PLAIN)]
        for sheet, columns in SHEETS.items()
    }


# ---- rows ---------------------------------------------------------------------------------------


def invoice_order(invoice: Invoice) -> tuple:
    """The order of the Invoices sheet (X): date, contract, customer (the id breaks a tie)."""
    return (invoice.invoice_date, invoice.contract_id, invoice.customer_id, invoice.invoice_id)


def log_order(entry: LogEntry) -> tuple:
    """The order of the RunLog sheet (X): run date, contract; a contract's rows as given."""
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
    # one converter per column: a formatted cell is reused for the next row (see module doc)
    amount, net, tax_amount, gross = cells.money(), cells.money(), cells.money(), cells.money()
    for inv in invoices:
        tax = invoice_tax(inv)
        places = _places(inv.currency, inv.amount)
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
            amount(inv.amount, places),
            len(inv.lines),
            inv.document_type.value,
            credited(inv.credited_invoice_id),
            net(inv.amount, places),  # NetAmount (E2)
            tax_amount(tax.tax, places),
            gross(tax.gross, places),
            None,  # Decision: the accountant's (R23)
        ]


def _line_rows(invoices: list[Invoice], cells: _Cells) -> Iterator[list[Any]]:
    text = cells.text
    invoice_text, line_id, line_name = text("InvoiceId"), text("ContractLineId"), text("LineName")
    cutoff = cells.date()
    money = cells.money()
    percent = cells.number(PERCENT_FORMAT)
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
                line.tax_category.value,
                percent(line.tax_percent),
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
        if len(value) <= FITS and "\n" not in value and "\r" not in value:
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


def _add_table(ws, name: str, columns: Iterable[str], data_rows: int) -> None:
    with warnings.catch_warnings():
        # "In write-only mode you must add table columns manually": make_table does.
        warnings.simplefilter("ignore", UserWarning)
        ws.add_table(make_table(name, columns, data_rows))
