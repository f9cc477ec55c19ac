"""Reading an accountant's decisions from an invoice workbook (R23, X5).

The upload passes the same gate as every workbook (L1-L3). Only the ``Decision`` cells are read,
with the ids that locate them: ``Invoices`` (InvoiceId, Decision) and ``InvoiceLineDetails``
(InvoiceId, SourceId, Decision). Headers match ignoring case, spaces and underscores; a blank
decision is no decision. Every problem is reported at its cell, all at once (W10).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from python_calamine import CalamineError, CalamineWorkbook

from invoicing.errors import InputRejected, Problem, UploadRejected
from invoicing.settings import Settings
from invoicing.workbook._cells import column_letter
from invoicing.workbook.gate import check_upload

INVOICE_DECISIONS = ("Confirm", "Cancel", "Credit")
DETAIL_DECISIONS = ("Remove", "WriteOff", "Credit", "CreditWriteOff")
INVOICES, DETAILS = "Invoices", "InvoiceLineDetails"


@dataclass(frozen=True, slots=True)
class InvoiceDecision:
    cell: str  # where the decision is, e.g. "L7"
    invoice_id: str
    decision: str  # one of INVOICE_DECISIONS


@dataclass(frozen=True, slots=True)
class DetailDecision:
    cell: str
    invoice_id: str
    source_id: str
    decision: str  # one of DETAIL_DECISIONS


@dataclass(frozen=True, slots=True)
class Decisions:
    invoices: tuple[InvoiceDecision, ...]
    details: tuple[DetailDecision, ...]


def read_decisions(data: bytes, settings: Settings | None = None) -> Decisions:
    """The decisions of an uploaded invoice workbook, in row order; UploadRejected for what the
    gate refuses, InputRejected with every cell problem."""
    decisions, problems = parse_decisions(data, settings)
    if problems:
        raise InputRejected(problems, title="The decisions have errors")
    return decisions


def parse_decisions(
    data: bytes, settings: Settings | None = None
) -> tuple[Decisions, list[Problem]]:
    """The readable decisions and the problems of the unreadable ones (UploadRejected for what
    the gate refuses): a caller can check the readable ones too and report all at once."""
    settings = settings or Settings()
    check_upload(bytes(data), max_bytes=settings.max_upload_bytes)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError, OSError) as exc:
        raise UploadRejected(f"the upload is not a readable .xlsx workbook ({exc})") from None
    problems: list[Problem] = []
    invoices = [
        InvoiceDecision(cell, values["invoiceid"], decision)
        for cell, values, decision in _rows(
            book, INVOICES, ("invoiceid",), INVOICE_DECISIONS, settings, problems
        )
    ]
    details = [
        DetailDecision(cell, values["invoiceid"], values["sourceid"], decision)
        for cell, values, decision in _rows(
            book, DETAILS, ("invoiceid", "sourceid"), DETAIL_DECISIONS, settings, problems
        )
    ]
    if not invoices and not details and not problems:
        problems.append(
            Problem(
                INVOICES,
                "",
                "no decision found: type Confirm, Cancel or Credit in the Decision column of "
                "Invoices, or Remove, WriteOff, Credit or CreditWriteOff in InvoiceLineDetails",
            )
        )
    return Decisions(tuple(invoices), tuple(details)), problems


def _key(name: object) -> str:
    return str(name or "").replace(" ", "").replace("_", "").lower()


def _rows(
    book: CalamineWorkbook,
    sheet: str,
    ids: tuple[str, ...],
    allowed: tuple[str, ...],
    settings: Settings,
    problems: list[Problem],
) -> list[tuple[str, dict[str, str], str]]:
    names = {_key(n): n for n in book.sheet_names}
    if _key(sheet) not in names:
        return []  # a sheet left out carries no decision
    rows = book.get_sheet_by_name(names[_key(sheet)]).to_python(nrows=settings.max_rows + 1)
    if not rows:
        return []
    header = {_key(v): i for i, v in enumerate(rows[0]) if _key(v)}
    if "decision" not in header:
        return []  # no Decision column on this sheet: no decision on it
    missing = [c for c in ids if c not in header]
    if missing:
        lacks = ", ".join(missing)
        problems.append(Problem(sheet, "A1", f"the header lacks {lacks}; download it again"))
        return []
    by_key = {_key(d): d for d in allowed}
    out = []
    column = header["decision"]
    for number, row in enumerate(rows[1:], start=2):
        raw = row[column] if column < len(row) else None
        text = str(raw).strip() if raw is not None else ""
        if not text:
            continue
        cell = f"{column_letter(column)}{number}"
        decision = by_key.get(_key(text))
        if decision is None:
            problems.append(
                Problem(sheet, cell, f'decision "{text[:40]}" is not one of {", ".join(allowed)}')
            )
            continue
        values = {}
        for name in ids:
            position = header[name]
            value = row[position] if position < len(row) else None
            values[name] = str(value).strip() if value is not None else ""
            if not values[name]:
                where = f"{column_letter(position)}{number}"
                problems.append(Problem(sheet, where, f"{name} is blank"))
        if all(values.values()):
            out.append((cell, values, decision))
    return out
