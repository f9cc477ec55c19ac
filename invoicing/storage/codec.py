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

from azure.data.tables import EdmType, EntityProperty
from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE

from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
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
from invoicing.schedule import ExplicitSchedule, Frequency, GeneratedSchedule, ScheduleRow
from invoicing.storage.keys import encode_key
from invoicing.tax import invoice_tax

PART_CHARS = 30_000
MAX_PARTS = 14  # 14 x 30,000 ASCII chars = 840 KB of UTF-16: under the 1 MiB entity limit
PENDING = "Pending"  # an invoice header written but not yet committed (not live)
DRAFT = Status.DRAFT.value
LIVE = frozenset({Status.DRAFT.value, Status.CONFIRMED.value})
_WEEKDAYS = (MO, TU, WE, TH, FR, SA, SU)

# ---- row keys ----------------------------------------------------------------------------------
# Contract partition (PartitionKey = encode_key(ContractId)), in RowKey order:
#   C                          the contract's configuration (header, customers, lines, schedules)
#   C:<n>                      further parts of a configuration too large for one entity
#   D:<invoice>:<line>:<n>     invoice line details
#   I:<invoice>                invoice headers
#   L:<invoice>:<line>         invoice lines
#   M:<milestone>              milestones
#   R:<YYYYMMDD>               the (contract, run date) commit marker, with the run's counts
#   T:<transaction>            transactions
#   X:<YYYYMMDD>:<n>           the (contract, run date) RunLog, in parts
CONFIG = "C"
CONFIG_PART = "C:"  # C:0001, C:0002 ...: further parts of a large configuration


def txn_key(transaction_id: str) -> str:
    return "T:" + encode_key(transaction_id)


def milestone_key(milestone_id: str) -> str:
    return "M:" + encode_key(milestone_id)


CONFIG_KEYS = (CONFIG, "C;")  # the RowKey range of a contract's configuration entities
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


def contract_from_config_rows(rows: Iterable[Mapping[str, Any]]) -> Contract | None:
    """The contract (without its items) from the entities of ``CONFIG_KEYS``."""
    head = None
    parts: dict[str, Mapping[str, Any]] = {}
    for e in rows:
        if e["RowKey"] == CONFIG:
            head = e
        elif e["RowKey"].startswith(CONFIG_PART):
            parts[e["RowKey"]] = e
    return None if head is None else contract_from_entities(head, config_parts=parts)


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


# ---- small helpers -----------------------------------------------------------------------------


def dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def undec(text: Any) -> Decimal | None:
    return None if text is None or text == "" else Decimal(str(text))


def day(text: Any) -> date:
    return date.fromisoformat(str(text))


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def plain_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, EntityProperty):
        return int(value.value)
    return int(value)


def pack(doc: Any, what: str) -> dict[str, Any]:
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"{what} is too large to store ({len(text):,} characters of JSON)")
    props: dict[str, Any] = {f"P{i}": part for i, part in enumerate(parts)}
    props["Parts"] = len(parts)
    return props


def unpack(entity: Mapping[str, Any]) -> Any:
    count = plain_int(entity.get("Parts")) or 0
    return json.loads("".join(entity[f"P{i}"] for i in range(count)))


def pack_chunks(rows: list[Any], what: str) -> list[dict[str, Any]]:
    """Split a list over as many entities as needed, each holding up to a few parts."""
    chunks: list[dict[str, Any]] = []
    current: list[Any] = []
    size = 0
    budget = PART_CHARS * 4
    for row in rows:
        row_size = len(json.dumps(row, ensure_ascii=True)) + 1
        if current and size + row_size > budget:
            chunks.append(pack(current, what))
            current, size = [], 0
        current.append(row)
        size += row_size
    if current:
        chunks.append(pack(current, what))
    return chunks


# ---- contract configuration --------------------------------------------------------------------


# E1's address columns, stored only when given (most contracts' customers have none).
_ADDRESS = ("street", "city", "postal_code", "country_code", "vat_id", "email")


def _customer_doc(c: Customer) -> list[Any]:
    doc: list[Any] = [c.customer_id, c.name, str(c.split_percent), c.rounding]
    address = {k: v for k in _ADDRESS if (v := getattr(c, k))}
    if address:
        doc.append(address)
    return doc


def _customer(doc: list[Any]) -> Customer:
    address = doc[4] if len(doc) > 4 else {}
    return Customer(doc[0], doc[1], Decimal(doc[2]), bool(doc[3]), **address)


def _schedule_doc(schedule: Any) -> dict[str, Any] | None:
    if schedule is None:
        return None
    if isinstance(schedule, ExplicitSchedule):
        return {
            "k": "x",
            "rows": [[r.run_date.isoformat(), r.cutoff.isoformat()] for r in schedule.rows],
        }
    assert isinstance(schedule, GeneratedSchedule)
    month_days: list[Any] = []
    for spec in schedule.month_days:
        if isinstance(spec, tuple):
            month_days.append([spec[0], spec[1].weekday])
        else:
            month_days.append(spec)
    return {
        "k": "g",
        "first": schedule.first.isoformat(),
        "last": schedule.last.isoformat() if schedule.last else None,
        "freq": schedule.frequency.value if schedule.frequency else None,
        "wd": schedule.weekday.weekday if schedule.weekday is not None else None,
        "md": month_days,
        "rrule": schedule.rrule,
    }


def _schedule(doc: dict[str, Any] | None) -> Any:
    if doc is None:
        return None
    if doc["k"] == "x":
        return ExplicitSchedule(tuple(ScheduleRow(day(a), day(b)) for a, b in doc["rows"]))
    month_days: list[Any] = []
    for spec in doc["md"]:
        month_days.append((spec[0], _WEEKDAYS[spec[1]]) if isinstance(spec, list) else spec)
    return GeneratedSchedule(
        first=day(doc["first"]),
        last=day(doc["last"]) if doc["last"] else None,
        frequency=Frequency(doc["freq"]) if doc["freq"] else None,
        weekday=_WEEKDAYS[doc["wd"]] if doc["wd"] is not None else None,
        month_days=tuple(month_days),
        rrule=doc["rrule"],
    )


def schedule_doc(schedule: Any) -> dict[str, Any] | None:
    """A schedule as stored in the configuration document (the due-date index keeps them too)."""
    return _schedule_doc(schedule)


def schedule_from_doc(doc: dict[str, Any] | None) -> Any:
    return _schedule(doc)


def line_doc(line: ContractLine) -> dict[str, Any]:
    """A contract line without its explicit schedule rows (those are counted separately)."""
    return {
        "id": line.line_id,
        "name": line.name,
        "method": line.billing_method.value,
        "classes": sorted(c.value for c in line.classes),
        "nte": dec(line.not_to_exceed),
        "customers": [_customer_doc(c) for c in line.customers],
        "schedule": _schedule_doc(line.schedule),
        "tax": [line.tax_category.value, str(line.tax_percent)],
    }


def _line(doc: dict[str, Any]) -> ContractLine:
    return ContractLine(
        line_id=doc["id"],
        name=doc["name"],
        billing_method=BillingMethod(doc["method"]),
        classes=frozenset(TxnClass(c) for c in doc["classes"]),
        not_to_exceed=undec(doc["nte"]),
        schedule=_schedule(doc["schedule"]),
        customers=tuple(_customer(c) for c in doc["customers"]),
        # configurations stored before E2 have no tax: exempt at 0, the reader's default
        **_line_tax(doc.get("tax")),
    )


def _line_tax(doc: list[str] | None) -> dict[str, Any]:
    if not doc:
        return {}
    return {"tax_category": TaxCategory(doc[0]), "tax_percent": Decimal(doc[1])}


def config_entities(pk: str, contract: Contract, order: int) -> list[dict[str, Any]]:
    """The contract's configuration as entities: ``C`` (the header and the first parts of the
    JSON document) then ``C:0001``, ``C:0002`` ... as the document needs (L4: a configuration
    of any size the workbook limits allow is stored in parts, never refused by the store)."""
    doc = {
        "customers": [_customer_doc(c) for c in contract.customers],
        "lines": [line_doc(line) for line in contract.lines],
    }
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    groups = [parts[i : i + MAX_PARTS] for i in range(0, len(parts), MAX_PARTS)]
    head: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": CONFIG,
        "ContractId": contract.contract_id,
        "Name": contract.name,
        "Currency": contract.currency,
        "Terms": contract.payment_terms_days,
        "TaxPercent": dec(contract.tax_percent),
        "Order": order,
        "Parts": len(groups[0]),
        "Entities": len(groups),
    }
    entities = [head]
    for n, group in enumerate(groups):
        target = head if n == 0 else {"PartitionKey": pk, "RowKey": config_part_key(n)}
        target.update({f"P{i}": part for i, part in enumerate(group)})
        if n:
            target["Parts"] = len(group)
            entities.append(target)
    return entities


def config_part_key(n: int) -> str:
    return f"{CONFIG_PART}{n:04d}"


def contract_from_entities(
    config: Mapping[str, Any],
    milestones: Iterable[Milestone] = (),
    transactions: Iterable[Transaction] = (),
    config_parts: Mapping[str, Mapping[str, Any]] | None = None,
) -> Contract:
    """The contract from its configuration entities (``config_parts``: RowKey -> entity of the
    ``C:`` rows) and its items."""
    count = plain_int(config.get("Entities")) or 1
    chunks = [config] + [(config_parts or {})[config_part_key(n)] for n in range(1, count)]
    doc = json.loads("".join(_joined(e) for e in chunks))
    return Contract(
        contract_id=config["ContractId"],
        name=config.get("Name") or "",
        currency=config["Currency"],
        customers=tuple(_customer(c) for c in doc["customers"]),
        lines=tuple(_line(line) for line in doc["lines"]),
        milestones=tuple(milestones),
        transactions=tuple(transactions),
        payment_terms_days=plain_int(config.get("Terms")) or 0,
        tax_percent=undec(config.get("TaxPercent")),
    )


def _joined(entity: Mapping[str, Any]) -> str:
    count = plain_int(entity.get("Parts")) or 0
    return "".join(entity[f"P{i}"] for i in range(count))


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
