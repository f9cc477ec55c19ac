"""A contract's configuration as stored (S4, L4): its name, currency, terms, customers with
their addresses, lines with their VAT and schedules, as one JSON document over as many entities
as it needs (``C``, then ``C:0001`` …), so that splits and lines change atomically per upload."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE

from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Milestone,
    TaxCategory,
    Transaction,
    TxnClass,
)
from invoicing.schedule import ExplicitSchedule, Frequency, GeneratedSchedule, ScheduleRow
from invoicing.storage.values import MAX_PARTS, PART_CHARS, day, dec, plain_int, undec

CONFIG = "C"
CONFIG_PART = "C:"  # C:0001, C:0002 ...: further parts of a large configuration
CONFIG_KEYS = (CONFIG, "C;")  # the RowKey range of a contract's configuration entities
_WEEKDAYS = (MO, TU, WE, TH, FR, SA, SU)


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
