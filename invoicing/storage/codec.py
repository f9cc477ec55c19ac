"""Model <-> table entities (S3): exact money, dates as ISO text, long text split over properties.

* Money, percentages, quantities and prices are stored as decimal strings (``str(Decimal)``) and
  read back with ``Decimal(text)``: exact, never a Double.
* Dates are ISO ``YYYY-MM-DD`` strings (no time zone can shift them).
* Large JSON documents (a contract's configuration, a run log) are ASCII JSON split into
  properties ``P0``, ``P1``, ... of at most ``PART_CHARS`` characters (a string property holds at
  most 64 KiB of UTF-16); ``Parts`` says how many.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from invoicing.model import (
    BillingMethod,
    Detail,
    DetailStatus,
    DocumentType,
    Invoice,
    InvoiceLine,
    LogEntry,
    Milestone,
    Outcome,
    Party,
    SourceType,
    Status,
    TaxCategory,
    Transaction,
    TxnClass,
)
from invoicing.storage.config import CONFIG as CONFIG
from invoicing.storage.config import CONFIG_KEYS as CONFIG_KEYS
from invoicing.storage.config import CONFIG_PART as CONFIG_PART
from invoicing.storage.config import config_entities as config_entities
from invoicing.storage.config import config_part_key as config_part_key
from invoicing.storage.config import contract_from_config_rows as contract_from_config_rows
from invoicing.storage.config import contract_from_entities as contract_from_entities
from invoicing.storage.config import line_doc as line_doc
from invoicing.storage.config import schedule_doc as schedule_doc
from invoicing.storage.config import schedule_from_doc as schedule_from_doc
from invoicing.storage.keys import encode_key
from invoicing.storage.values import MAX_PARTS as MAX_PARTS
from invoicing.storage.values import PART_CHARS as PART_CHARS
from invoicing.storage.values import day as day
from invoicing.storage.values import dec as dec
from invoicing.storage.values import int64 as int64
from invoicing.storage.values import pack as pack
from invoicing.storage.values import pack_chunks as pack_chunks
from invoicing.storage.values import plain_int as plain_int
from invoicing.storage.values import undec as undec
from invoicing.storage.values import unpack as unpack
from invoicing.tax import invoice_tax

PENDING = "Pending"  # an invoice header written but not yet committed (not live)
DRAFT = Status.DRAFT.value
LIVE = frozenset({Status.DRAFT.value, Status.CONFIRMED.value})

# ---- row keys ----------------------------------------------------------------------------------
# Contract partition (PartitionKey = encode_key(ContractId)), in RowKey order:
#   C                          the contract's configuration (header, customers, lines, schedules)
#   C:<n>                      further parts of a configuration too large for one entity
#   D:<invoice>:<line>:<n>     invoice line details
#   I:<invoice>                invoice headers
#   L:<invoice>:<line>         invoice lines
#   M:<milestone>              milestones
#   R:<YYYYMMDD>               the (contract, run date) commit marker, with the run's counts
#                              and its RunLog when that packs into one entity (LogInline)
#   T:<transaction>            transactions
#   X:<YYYYMMDD>:<n>           the (contract, run date) RunLog, in parts, when it does not
#                              fit in its marker (and in stores from before LogInline)


def txn_key(transaction_id: str) -> str:
    return "T:" + encode_key(transaction_id)


def milestone_key(milestone_id: str) -> str:
    return "M:" + encode_key(milestone_id)


TRANSACTION_KEYS = ("T:", "T;")  # the RowKey range of a partition's transactions


def line_keys(invoice_id: str) -> tuple[str, str]:
    """The RowKey range of one invoice's lines."""
    key = encode_key(invoice_id)
    return f"L:{key}:", f"L:{key};"


def detail_keys(invoice_id: str) -> tuple[str, str]:
    key = encode_key(invoice_id)
    return f"D:{key}:", f"D:{key};"


def is_pending(header: Mapping[str, Any]) -> bool:
    """A header written but not committed: not live, its rows free to be planned again."""
    return header.get("Status") == PENDING


def header_status(header: Mapping[str, Any] | None) -> str | None:
    return None if header is None else header.get("Status")


def header_seq(header: Mapping[str, Any]) -> int | None:
    """The confirmed invoice's place in the number series (R16)."""
    return plain_int(header.get("Seq"))


def confirmed(header: Mapping[str, Any], number: str, seq: int) -> dict[str, Any]:
    """The header stamped Confirmed with its number."""
    return {**header, "Status": Status.CONFIRMED.value, "Number": number, "Seq": int64(seq)}


def cancelled(header: Mapping[str, Any]) -> dict[str, Any]:
    return {**header, "Status": Status.CANCELLED.value}


def with_parties(
    header: Mapping[str, Any], seller: Party | None, buyer: Party | None
) -> dict[str, Any]:
    """The header with the parties as they were when it was numbered (E3: an issued invoice's
    document shows the seller and buyer it was issued to, whatever is uploaded later)."""
    doc = {
        role: dataclasses.asdict(party)
        for role, party in (("seller", seller), ("buyer", buyer))
        if party is not None
    }
    return {**header, "Parties": json.dumps(doc, ensure_ascii=True, separators=(",", ":"))}


def parties_of(header: Mapping[str, Any]) -> tuple[Party | None, Party | None] | None:
    """(seller, buyer) as the header's snapshot has them; None when it has none (a draft)."""
    text = header.get("Parties")
    if not text:
        return None
    doc = json.loads(text)
    seller, buyer = doc.get("seller"), doc.get("buyer")
    return (Party(**seller) if seller else None, Party(**buyer) if buyer else None)


def with_amounts(header: Mapping[str, Any], inv: Invoice) -> dict[str, Any]:
    """The header with ``inv``'s amount and tax (R22: a draft whose details changed)."""
    return {**header, **_amounts(inv)}


def _amounts(inv: Invoice) -> dict[str, str]:
    tax = invoice_tax(inv)  # E2, X5: kept beside the lines so that audit can check the sums
    return {"Amount": str(inv.amount), "TaxAmount": str(tax.tax), "GrossAmount": str(tax.gross)}


def is_credit_note(header: Mapping[str, Any]) -> bool:
    return header.get("DocumentType") == DocumentType.CREDIT_NOTE.value


def is_header_key(row_key: str) -> bool:
    return row_key.startswith("I:")


def header_key(invoice_id: str) -> str:
    return "I:" + encode_key(invoice_id)


def line_key(invoice_id: str, line_number: int) -> str:
    return f"L:{encode_key(invoice_id)}:{line_number:05d}"


def detail_key(invoice_id: str, line_number: int, n: int) -> str:
    return f"D:{encode_key(invoice_id)}:{line_number:05d}:{n:06d}"


def marker_key(run_date: date) -> str:
    return f"R:{run_date:%Y%m%d}"


def log_key(run_date: date, n: int) -> str:
    return f"X:{run_date:%Y%m%d}:{n:04d}"


# ---- items -------------------------------------------------------------------------------------


def transaction_entity(pk: str, t: Transaction) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": txn_key(t.transaction_id),
        "Id": t.transaction_id,
        "Line": t.line_id,
        "Class": t.txn_class.value,
        "Date": t.date.isoformat(),
        "Amount": str(t.amount),
        "Ready": t.ready,
        "Desc": t.description,
        "Res": t.resource,
        "Qty": dec(t.quantity),
        "Price": dec(t.unit_price),
    }


def transaction_from(e: Mapping[str, Any]) -> Transaction:
    return Transaction(
        transaction_id=e["Id"],
        line_id=e["Line"],
        txn_class=TxnClass(e["Class"]),
        date=day(e["Date"]),
        amount=Decimal(e["Amount"]),
        ready=bool(e.get("Ready")),
        description=e.get("Desc") or "",
        resource=e.get("Res") or "",
        quantity=undec(e.get("Qty")),
        unit_price=undec(e.get("Price")),
    )


def milestone_entity(pk: str, m: Milestone) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": milestone_key(m.milestone_id),
        "Id": m.milestone_id,
        "Line": m.line_id,
        "Name": m.name,
        "Date": m.date.isoformat(),
        "Amount": str(m.amount),
        "Ready": m.ready,
    }


def milestone_from(e: Mapping[str, Any]) -> Milestone:
    return Milestone(
        milestone_id=e["Id"],
        line_id=e["Line"],
        name=e.get("Name") or "",
        date=day(e["Date"]),
        amount=Decimal(e["Amount"]),
        ready=bool(e.get("Ready")),
    )


# ---- invoices ----------------------------------------------------------------------------------


def header_entity(pk: str, inv: Invoice, status: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": header_key(inv.invoice_id),
        "InvoiceId": inv.invoice_id,
        "Status": status,
        "ContractId": inv.contract_id,
        "ContractName": inv.contract_name,
        "CustomerId": inv.customer_id,
        "CustomerName": inv.customer_name,
        "InvoiceDate": inv.invoice_date.isoformat(),
        "DueDate": inv.due_date.isoformat(),
        "Currency": inv.currency,
        **_amounts(inv),
        "LineCount": len(inv.lines),
    }
    if inv.invoice_number is not None:
        entity["Number"] = inv.invoice_number
    if inv.is_credit_note:
        entity.update(
            DocumentType=inv.document_type.value,
            CreditedInvoiceId=inv.credited_invoice_id,
            CreditedNumber=inv.credited_number,
        )
    if inv.stated_tax:  # a credit note's tax per group (tax.credit_tax)
        entity["TaxGroups"] = json.dumps(
            [[c.value, str(p), str(t)] for c, p, t in inv.stated_tax], separators=(",", ":")
        )
    return entity


def line_entities(pk: str, inv: Invoice) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in inv.lines:
        out.append(
            {
                "PartitionKey": pk,
                "RowKey": line_key(inv.invoice_id, line.line_number),
                "InvoiceId": inv.invoice_id,
                "LineNumber": line.line_number,
                "LineId": line.contract_line_id,
                "LineName": line.line_name,
                "Method": line.billing_method.value,
                "Cutoff": line.cutoff.isoformat() if line.cutoff else None,
                "Amount": str(line.amount),
                "DetailCount": len(line.details),
                "TaxCategory": line.tax_category.value,
                "TaxPercent": str(line.tax_percent),
            }
        )
    return out


def detail_entities(pk: str, inv: Invoice) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in inv.lines:
        for n, d in enumerate(line.details, start=1):
            out.append(
                {
                    "PartitionKey": pk,
                    "RowKey": detail_key(inv.invoice_id, line.line_number, n),
                    "InvoiceId": inv.invoice_id,
                    "LineNumber": line.line_number,
                    "N": n,
                    "SourceType": d.source_type.value,
                    "SourceId": d.source_id,
                    "Class": d.txn_class.value if d.txn_class else None,
                    "Date": d.date.isoformat(),
                    "Desc": d.description,
                    "Qty": dec(d.quantity),
                    "Price": dec(d.unit_price),
                    "Split": str(d.split_percent),
                    "Amount": str(d.amount),
                    "Status": None if d.status is DetailStatus.INVOICED else d.status.value,
                    "Note": d.note or None,
                    "Rebilled": True if d.rebilled else None,
                }
            )
    return out


def invoice_entities(pk: str, inv: Invoice, status: str) -> list[dict[str, Any]]:
    return [header_entity(pk, inv, status), *line_entities(pk, inv), *detail_entities(pk, inv)]


def _detail(e: Mapping[str, Any]) -> Detail:
    return Detail(
        source_type=SourceType(e["SourceType"]),
        source_id=e["SourceId"],
        txn_class=TxnClass(e["Class"]) if e.get("Class") else None,
        date=day(e["Date"]),
        description=e.get("Desc") or "",
        quantity=undec(e.get("Qty")),
        unit_price=undec(e.get("Price")),
        split_percent=Decimal(e["Split"]),
        amount=Decimal(e["Amount"]),
        status=DetailStatus(e["Status"]) if e.get("Status") else DetailStatus.INVOICED,
        note=e.get("Note") or "",
        rebilled=bool(e.get("Rebilled")),
    )


def status_of(header: Mapping[str, Any]) -> Status | None:
    """The header's status; None for a Pending (uncommitted) header."""
    text = header.get("Status")
    return None if text == PENDING else Status(text)


def invoice_from(
    header: Mapping[str, Any],
    lines: Iterable[Mapping[str, Any]],
    details: Iterable[Mapping[str, Any]],
) -> Invoice:
    by_line: dict[int, list[Mapping[str, Any]]] = {}
    for d in details:
        by_line.setdefault(int(d["LineNumber"]), []).append(d)
    invoice_lines = []
    for line in sorted(lines, key=lambda e: int(e["LineNumber"])):
        number = int(line["LineNumber"])
        ds = sorted(by_line.get(number, ()), key=lambda e: int(e["N"]))
        invoice_lines.append(
            InvoiceLine(
                line_number=number,
                contract_line_id=line["LineId"],
                line_name=line.get("LineName") or "",
                billing_method=BillingMethod(line["Method"]),
                cutoff=day(line["Cutoff"]) if line.get("Cutoff") else None,
                amount=Decimal(line["Amount"]),
                details=tuple(_detail(d) for d in ds),
                tax_category=TaxCategory(line.get("TaxCategory") or TaxCategory.EXEMPT.value),
                tax_percent=Decimal(line.get("TaxPercent") or "0"),
            )
        )
    status = status_of(header) or Status.DRAFT
    return Invoice(
        invoice_id=header["InvoiceId"],
        contract_id=header["ContractId"],
        contract_name=header.get("ContractName") or "",
        customer_id=header["CustomerId"],
        customer_name=header.get("CustomerName") or "",
        invoice_date=day(header["InvoiceDate"]),
        due_date=day(header["DueDate"]),
        currency=header["Currency"],
        amount=Decimal(header["Amount"]),
        lines=tuple(invoice_lines),
        status=status,
        invoice_number=header.get("Number") or None,
        document_type=DocumentType(header.get("DocumentType") or DocumentType.INVOICE.value),
        credited_invoice_id=header.get("CreditedInvoiceId") or None,
        credited_number=header.get("CreditedNumber") or None,
        credit_notes=tuple(
            (c["id"], c.get("number")) for c in json.loads(header.get("Credits") or "[]")
        ),
        stated_tax=tuple(
            (TaxCategory(c), Decimal(p), Decimal(t))
            for c, p, t in json.loads(header.get("TaxGroups") or "[]")
        ),
    )


# ---- run log -----------------------------------------------------------------------------------


def log_rows(entries: Iterable[LogEntry]) -> list[list[Any]]:
    return [
        [e.line_id, e.outcome.value, e.items, str(e.amount), e.note, e.currency] for e in entries
    ]


def log_from(run_date: date, contract_id: str, rows: Iterable[list[Any]]) -> list[LogEntry]:
    return [
        LogEntry(
            run_date,
            contract_id,
            r[0],
            Outcome(r[1]),
            int(r[2]),
            Decimal(r[3]),
            r[4],
            r[5] if len(r) > 5 else "",
        )
        for r in rows
    ]
