"""The stateless preview (R20, H4, C preview): workbook bytes in, invoice workbook bytes out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from invoicing.engine import date_range, plan_range
from invoicing.model import Invoice, LogEntry
from invoicing.settings import Settings
from invoicing.workbook.reader import read_workbook
from invoicing.workbook.writer import invoice_workbook_bytes


@dataclass(frozen=True, slots=True)
class PreviewResult:
    invoices: tuple[Invoice, ...]
    log: tuple[LogEntry, ...]
    warnings: tuple[str, ...]
    workbook: bytes


def preview_workbook(
    data: bytes, start: date, end: date, *, settings: Settings | None = None
) -> PreviewResult:
    """Read and validate ``data``, plan every date from ``start`` to ``end``, write the invoices."""
    read = read_workbook(data, settings=settings or Settings())
    plan = plan_range(read.portfolio, date_range(start, end))
    return PreviewResult(
        plan.invoices, plan.log, read.warnings, invoice_workbook_bytes(plan.invoices, plan.log)
    )
