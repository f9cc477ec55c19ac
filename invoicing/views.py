"""JSON views of the engine's records for the HTTP API: exact decimals as strings, ISO dates."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from invoicing.model import DetailStatus, Invoice


def invoice_header(invoice: Invoice) -> dict[str, Any]:
    return {
        "InvoiceId": invoice.invoice_id,
        "InvoiceNumber": invoice.invoice_number,
        "Status": invoice.status.value,
        "ContractId": invoice.contract_id,
        "ContractName": invoice.contract_name,
        "CustomerId": invoice.customer_id,
        "CustomerName": invoice.customer_name,
        "InvoiceDate": invoice.invoice_date.isoformat(),
        "DueDate": invoice.due_date.isoformat(),
        "Currency": invoice.currency,
        "Amount": str(invoice.amount),
        "LineCount": len(invoice.lines),
        "DocumentType": invoice.document_type.value,
        "CreditedInvoiceId": invoice.credited_invoice_id,
        "CreditedInvoiceNumber": invoice.credited_number,
        "CreditNotes": [
            {"CreditNoteId": note_id, "CreditNoteNumber": number}
            for note_id, number in invoice.credit_notes
        ],
    }


def invoice_full(invoice: Invoice) -> dict[str, Any]:
    body = invoice_header(invoice)
    body["Lines"] = [
        {
            "LineNumber": line.line_number,
            "ContractLineId": line.contract_line_id,
            "LineName": line.line_name,
            "BillingMethod": line.billing_method.value,
            "TransactionCutoffDate": line.cutoff.isoformat() if line.cutoff else None,
            "Amount": str(line.amount),
            "Details": [
                {
                    "SourceType": d.source_type.value,
                    "SourceId": d.source_id,
                    "Class": d.txn_class.value if d.txn_class else None,
                    "Date": d.date.isoformat(),
                    "Description": d.description,
                    "Quantity": _text(d.quantity),
                    "UnitPrice": _text(d.unit_price),
                    "SplitPercent": str(d.split_percent),
                    "Amount": str(d.amount),
                    "Status": d.status.value,
                    "Note": d.note or None,
                }
                for d in line.details
                if d.status is not DetailStatus.REMOVED  # back in the backlog: not on it
            ],
        }
        for line in invoice.lines
    ]
    return body


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for dataclasses, enums, decimals (as exact strings) and dates."""
    if isinstance(value, Invoice):
        return invoice_full(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)
