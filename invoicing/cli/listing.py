"""The invoices a command lists on stdout (preview, export): one line each, net, tax and gross."""

from __future__ import annotations

from collections.abc import Sequence

from invoicing.model import Invoice
from invoicing.tax import invoice_tax

LISTED = 50  # invoices listed on stdout; the workbook has them all


def invoice_lines(invoices: Sequence[Invoice], total: int, output: str) -> list[str]:
    """The first ``LISTED`` of ``invoices`` (the first of ``total``), one line each."""
    rows = []
    for invoice in invoices[:LISTED]:
        tax = invoice_tax(invoice)
        number = f"{invoice.invoice_number}  " if invoice.invoice_number else ""
        rows.append(
            f"  {invoice.invoice_date}  {number}{invoice.invoice_id}  {invoice.contract_id}  "
            f"{invoice.customer_id}  {invoice.currency} {invoice.amount} + tax {tax.tax} = "
            f"{tax.gross}  {len(invoice.lines)} line(s)"
        )
    if total > LISTED:
        rows.append(f"  ... and {total - LISTED:,} more (see {output})")
    return rows
