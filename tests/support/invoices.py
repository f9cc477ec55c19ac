"""Reading invoice workbooks back, and building invoices in code, for tests.

``read_invoice_workbook`` turns an invoice workbook into plain, comparable values so that two
workbooks (CLI vs HTTP preview, preview vs storage export) can be compared by content.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import BytesIO

from openpyxl import load_workbook

from invoicing.engine import Detail, Invoice, InvoiceLine, LogEntry, invoice_id
from invoicing.model import BillingMethod, Outcome, SourceType, Status, TxnClass

_EXCEL_ESCAPE = re.compile("_x([0-9A-Fa-f]{4})_")


def excel_text(value: str) -> str:
    """A cell string as Excel shows it: Excel decodes ``_xHHHH_`` escapes (openpyxl does not)."""
    return _EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value) if "_x" in value else value


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.date() if value.time() == datetime.min.time() else value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(format(value, ".15g"))
    if isinstance(value, str):
        return excel_text(value)
    return value


def read_invoice_workbook(data: bytes) -> dict[str, list[tuple]]:
    """Sheet name -> data rows (no header), as Excel would show them.

    Dates come back as ``date``, numbers as ``Decimal`` (so ``5000`` and ``5000.00`` compare
    equal), text as text; blank rows (the blank row an empty table spans) are left out.
    """
    wb = load_workbook(BytesIO(data), read_only=True, data_only=False)
    try:
        result: dict[str, list[tuple]] = {}
        for ws in wb.worksheets:
            rows = ws.iter_rows(values_only=True)
            next(rows, None)  # header
            result[ws.title] = [
                tuple(_plain(v) for v in row) for row in rows if any(v is not None for v in row)
            ]
        return result
    finally:
        wb.close()


def read_headers(data: bytes) -> dict[str, tuple]:
    """Sheet name -> header row."""
    wb = load_workbook(BytesIO(data), read_only=True)
    try:
        return {ws.title: next(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()


# ---- builders -----------------------------------------------------------------------------------

D = date.fromisoformat


def detail(
    source_id: str = "T1",
    amount: str = "100.00",
    *,
    day: str = "2020-10-01",
    description: str = "work",
    milestone: bool = False,
    quantity: str | None = "1",
    unit_price: str | None = None,
    split: str = "100",
    txn_class: TxnClass = TxnClass.TIME,
) -> Detail:
    if milestone:
        return Detail(SourceType.MILESTONE, source_id, None, D(day), description, None, None,
                      Decimal(split), Decimal(amount))
    return Detail(
        SourceType.TRANSACTION, source_id, txn_class, D(day), description,
        Decimal(quantity) if quantity is not None else None,
        Decimal(unit_price if unit_price is not None else amount) if quantity is not None else None,
        Decimal(split), Decimal(amount),
    )


def line(
    number: int = 1,
    details: Sequence[Detail] = (),
    *,
    line_id: str = "L1",
    name: str = "Line one",
    fixed_price: bool = False,
    cutoff: str | None = "2020-10-04",
) -> InvoiceLine:
    details = tuple(details) or (detail(),)
    return InvoiceLine(
        line_number=number,
        contract_line_id=line_id,
        line_name=name,
        billing_method=(
            BillingMethod.FIXED_PRICE if fixed_price else BillingMethod.TIME_AND_MATERIAL
        ),
        cutoff=None if fixed_price or cutoff is None else D(cutoff),
        amount=sum((d.amount for d in details), Decimal(0)),
        details=details,
    )


def invoice(
    contract_id: str = "C1",
    customer_id: str = "CUST",
    day: str = "2020-10-05",
    lines: Sequence[InvoiceLine] = (),
    *,
    currency: str = "USD",
    contract_name: str = "Contract one",
    customer_name: str = "Customer one",
    status: Status = Status.DRAFT,
    number: str | None = None,
    terms: int = 30,
) -> Invoice:
    lines = tuple(lines) or (line(),)
    run = D(day)
    return Invoice(
        invoice_id=invoice_id(contract_id, customer_id, run),
        contract_id=contract_id,
        contract_name=contract_name,
        customer_id=customer_id,
        customer_name=customer_name,
        invoice_date=run,
        due_date=run + timedelta(days=terms),
        currency=currency,
        amount=sum((ln.amount for ln in lines), Decimal(0)),
        lines=lines,
        status=status,
        invoice_number=number,
    )


def log_entry(
    day: str = "2020-10-05",
    contract_id: str = "C1",
    line_id: str = "L1",
    outcome: Outcome = Outcome.INVOICED,
    items: int = 1,
    amount: str = "100.00",
    note: str = "cut-off 2020-10-04",
) -> LogEntry:
    return LogEntry(D(day), contract_id, line_id, outcome, items, Decimal(amount), note)


# ---- safety checks ------------------------------------------------------------------------------

_FORMULA_ELEMENT = re.compile(rb"<(?:\w+:)?f[\s>/]")


def formula_cells(data: bytes) -> list[str]:
    """Every formula in a workbook, as ``Sheet!A1`` (cells typed ``f``) or ``part: <f>`` (raw XML):
    the L4 check. Empty for every workbook we write."""
    import zipfile

    from openpyxl import load_workbook as load

    found: list[str] = []
    wb = load(BytesIO(data))  # normal mode: every cell, with its data type
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f" or (
                    isinstance(cell.value, str) and cell.data_type != "s"
                ):
                    found.append(f"{ws.title}!{cell.coordinate}")
    with zipfile.ZipFile(BytesIO(data)) as archive:
        for name in archive.namelist():
            is_sheet = name.startswith("xl/worksheets/") and name.endswith(".xml")
            if is_sheet and _FORMULA_ELEMENT.search(archive.read(name)):
                found.append(f"{name}: <f>")
    return found
