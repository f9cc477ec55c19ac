"""Invoices, credit notes and parties for the document tests, built from the engine's records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from invoicing.documents.document import CreditedInvoice, Document, document_from_invoice
from invoicing.model import (
    BillingMethod,
    Detail,
    Invoice,
    InvoiceLine,
    SourceType,
    Status,
    TxnClass,
)
from invoicing.parties import Party
from invoicing.tax import LineTax, TaxCategory

D = date.fromisoformat
ISSUED = D("2020-10-05")
FIRST_DAY = D("2020-09-28")

SELLER = Party(
    name="Contoso Consulting GmbH",
    street="Friedrichstraße 100",
    city="Berlin",
    postal_code="10117",
    country_code="DE",
    vat_id="DE123456789",
    email="billing@contoso.example",
    iban="DE89370400440532013000",
)
BUYER = Party(
    name="Adatum Corporation SAS",
    street="12 rue de la Paix",
    city="Paris",
    postal_code="75002",
    country_code="FR",
    vat_id="FR40303265045",
    email="ap@adatum.example",
)


def line(
    number: int,
    name: str,
    *amounts: str,
    line_id: str | None = None,
    milestone: bool = False,
    start: date = FIRST_DAY,
) -> InvoiceLine:
    """An invoice line whose details have these amounts, dated one day apart from ``start``."""
    details = []
    for i, text in enumerate(amounts):
        amount = Decimal(text)
        if milestone:
            details.append(
                Detail(
                    SourceType.MILESTONE,
                    f"M-{number}-{i + 1}",
                    None,
                    start + timedelta(days=i),
                    f"{name} milestone {i + 1}",
                    None,
                    None,
                    Decimal(100),
                    amount,
                )
            )
        else:
            details.append(
                Detail(
                    SourceType.TRANSACTION,
                    f"T-{number}-{i + 1}",
                    TxnClass.TIME,
                    start + timedelta(days=i),
                    f"Consulting day {i + 1} & review <draft>",
                    Decimal(1),
                    amount,
                    Decimal(100),
                    amount,
                )
            )
    return InvoiceLine(
        line_number=number,
        contract_line_id=line_id or f"L{number}",
        line_name=name,
        billing_method=BillingMethod.FIXED_PRICE if milestone else BillingMethod.TIME_AND_MATERIAL,
        cutoff=None if milestone else start + timedelta(days=len(amounts)),
        amount=sum((d.amount for d in details), Decimal(0)),
        details=tuple(details),
    )


def invoice(
    currency: str,
    lines: Sequence[InvoiceLine],
    *,
    status: Status = Status.CONFIRMED,
    number: str | None = "INV-000042",
    invoice_id: str = "INV-20201005-0123456789",
    issued: date = ISSUED,
) -> Invoice:
    return Invoice(
        invoice_id=invoice_id,
        contract_id="C-100",
        contract_name="Adatum implementation",
        customer_id="ADATUM",
        customer_name="Adatum Corporation SAS",
        invoice_date=issued,
        due_date=issued + timedelta(days=30),
        currency=currency,
        amount=sum((li.amount for li in lines), Decimal(0)),
        lines=tuple(lines),
        status=status,
        invoice_number=None if status is Status.DRAFT else number,
    )


def credit_note(credited: Invoice, number: str = "CRN-000007") -> Invoice:
    """A full credit of ``credited`` as the store keeps it: negated figures (X5)."""
    lines = tuple(
        li._replace(
            amount=-li.amount, details=tuple(d._replace(amount=-d.amount) for d in li.details)
        )
        for li in credited.lines
    )
    return credited._replace(
        invoice_id=f"{credited.invoice_id}-C1",
        invoice_number=number,
        invoice_date=credited.invoice_date + timedelta(days=10),
        amount=-credited.amount,
        lines=lines,
        status=Status.CONFIRMED,
    )


def taxes(*pairs: tuple[str, str]) -> list[LineTax]:
    """Line taxes aligned with an invoice's lines: ("S", "20"), ("AE", "0") …"""
    return [LineTax(TaxCategory(c), Decimal(p)) for c, p in pairs]


def document(
    inv: Invoice,
    line_taxes: Sequence[LineTax],
    *,
    seller: Party = SELLER,
    buyer: Party = BUYER,
    credited: Invoice | None = None,
) -> Document:
    reference = None
    if credited is not None:
        reference = CreditedInvoice(
            credited.invoice_id, credited.invoice_number or "", credited.invoice_date
        )
    return document_from_invoice(inv, seller, buyer, line_taxes, credited=reference)
