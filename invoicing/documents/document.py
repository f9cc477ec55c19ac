"""The document record every writer (CII, UBL, PDF) renders, and the adapter from the engine's
``Invoice`` (SPEC E3).

A ``Document`` carries its amounts as EN 16931 wants them: an invoice's and a credit note's are
both positive, the credit note being told apart by its type code 381 and the reference to the
invoice it credits. The store keeps credit notes with negative figures (X5, E2's mirror); the
adapter turns them round, so that the PDF a customer reads and the XML embedded in it agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from invoicing.errors import DocumentRefused
from invoicing.model import Invoice, Status
from invoicing.money import decimals_of, minor_unit, round_half_up
from invoicing.parties import Party, missing_fields
from invoicing.tax import (
    Exemption,
    LineTax,
    TaxableLine,
    TaxCategory,
    TaxError,
    TaxSummary,
    compute,
    with_stated,
)

# UNTDID 1001 document type codes (BT-3).
INVOICE_TYPE_CODE = "380"  # commercial invoice
CREDIT_NOTE_TYPE_CODE = "381"  # credit note
# A Draft is a proforma: never to be booked as an invoice by the buyer's system, so its XML says
# so (325 is in the EN 16931 list of invoice type codes) and it carries the InvoiceId, not a
# number. The PDF of a draft says PROFORMA.
PROFORMA_TYPE_CODE = "325"

# EN 16931 (BR-DEC-*) allows at most two decimals in every amount of the XML.
EN16931_AMOUNT_DECIMALS = 2


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """Text as XML 1.0 can hold it: control characters (other than tab and line breaks) and
    lone surrogates, which no XML document may contain, become spaces."""
    return _NOT_XML.sub(" ", text)


class DocumentType(StrEnum):
    INVOICE = "Invoice"
    CREDIT_NOTE = "CreditNote"


class DocumentError(DocumentRefused, ValueError):
    """A document that cannot be made; ``problems`` lists every reason (409 / exit 2)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(list(problems))


class DocumentDetail(NamedTuple):
    """One detail row of an invoice line (an item's share), shown in the PDF and the line note."""

    source_id: str
    date: date
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """One invoice line (BG-25): quantity 1 at the line's net amount, its details as a note."""

    line_id: str  # BT-126
    name: str  # BT-153
    net_amount: Decimal  # BT-131
    category: TaxCategory  # BT-151
    percent: Decimal  # BT-152
    details: tuple[DocumentDetail, ...] = ()
    contract_line_id: str = ""  # BT-155, the seller's item id
    period: tuple[date, date] | None = None  # BG-26, the line's first and last detail date


class CreditedInvoice(NamedTuple):
    """The invoice a credit note credits (BG-3)."""

    invoice_id: str
    invoice_number: str  # BT-25
    issue_date: date | None = None  # BT-26


@dataclass(frozen=True, slots=True)
class Document:
    document_type: DocumentType
    number: str  # BT-1: the invoice or credit note number, or a draft's InvoiceId
    invoice_id: str
    draft: bool
    issue_date: date  # BT-2
    due_date: date | None  # BT-9
    currency: str  # BT-5
    seller: Party
    buyer: Party
    lines: tuple[DocumentLine, ...]
    tax: TaxSummary  # BG-23 and the totals BT-109/110/112/115
    payment_terms: str  # BT-20
    contract_id: str = ""  # BT-12 and BT-10
    contract_name: str = ""
    credited: CreditedInvoice | None = None
    note: str = ""  # BT-22

    @property
    def type_code(self) -> str:
        if self.document_type is DocumentType.CREDIT_NOTE:
            return CREDIT_NOTE_TYPE_CODE
        return PROFORMA_TYPE_CODE if self.draft else INVOICE_TYPE_CODE

    @property
    def is_credit_note(self) -> bool:
        return self.document_type is DocumentType.CREDIT_NOTE

    @property
    def period(self) -> tuple[date, date] | None:
        """BG-14: from the first to the last detail date of the document."""
        periods = [line.period for line in self.lines if line.period]
        if not periods:
            return None
        return min(p[0] for p in periods), max(p[1] for p in periods)

    @property
    def categories(self) -> tuple[TaxCategory, ...]:
        return tuple(dict.fromkeys(line.category for line in self.lines))

    @property
    def buyer_reference(self) -> str:
        """BT-10 (Peppol asks for it, or an order reference): the contract, the reference both
        parties know."""
        return self.contract_id or self.number


def notes_of(document: Document) -> list[str]:
    """The document's notes (BT-22): the proforma warning, the contract, the caller's note."""
    notes = []
    if document.draft:
        notes.append(f"PROFORMA {document.invoice_id}: a draft, not a VAT invoice.")
    if document.contract_name:
        notes.append(f"Contract {document.contract_id}: {document.contract_name}")
    if document.note:
        notes.append(document.note)
    return notes


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount as people read it: thousands separators, the currency's minor unit
    (``1,234.50`` USD, ``1,235`` JPY, ``1,234.500`` KWD). The PDF prints amounts this way."""
    return f"{round_half_up(amount, minor_unit(currency)):,f}"


def format_percent(percent: Decimal) -> str:
    """``20``, ``7.7``, ``0``: no exponent, no trailing zeros."""
    return format(percent.normalize(), "f")


def xml_amount(amount: Decimal, currency: str) -> str:
    """An amount for EN 16931 XML: plain decimal text with the currency's minor unit, at most two
    decimals (BR-DEC-*). A KWD amount such as 12.340 is written 12.34; one that needs its third
    decimal cannot be written exactly and is refused by ``en16931_problems`` first."""
    places = min(minor_unit(currency), EN16931_AMOUNT_DECIMALS)
    value = round_half_up(amount, places)
    if value != amount:
        raise DocumentError(
            [f"amount {amount} {currency} has more than {places} decimals, which EN 16931 forbids"]
        )
    return format(value, "f")


def amounts_of(document: Document) -> list[Decimal]:
    """Every amount the XML writes."""
    amounts = [line.net_amount for line in document.lines]
    for group in document.tax.lines:
        amounts += [group.basis, group.tax]
    amounts += [document.tax.net, document.tax.tax, document.tax.gross]
    return amounts


def en16931_problems(document: Document) -> list[str]:
    """Why the document cannot be written as EN 16931 XML, or an empty list.

    EN 16931 allows at most two decimals in an amount (BR-DEC-*): a currency with three (BHD,
    KWD, OMR, …) can be written only when no amount uses its third decimal. The XML is then
    refused rather than rounded: it must state the same amounts as the invoice.
    """
    places = minor_unit(document.currency)
    if places <= EN16931_AMOUNT_DECIMALS:
        return []
    inexact = sorted(
        {a for a in amounts_of(document) if decimals_of(a.normalize()) > EN16931_AMOUNT_DECIMALS}
    )
    if not inexact:
        return []
    shown = ", ".join(format_amount(a, document.currency) for a in inexact[:5])
    return [
        f"{document.currency} amounts with a third decimal ({shown}) cannot be written in "
        "EN 16931 XML, which allows at most two decimals (BR-DEC)"
    ]


# ---- the adapter from the engine's records -----------------------------------------------------


def default_payment_terms(
    issue_date: date,
    due_date: date | None,
    seller: Party,
    credited: CreditedInvoice | None = None,
) -> str:
    if credited is not None:
        return (
            f"Credit note for invoice {credited.invoice_number}: the amount is refunded or set "
            "off against open invoices."
        )
    text = "Payment due on receipt."
    if due_date is not None:
        days = (due_date - issue_date).days
        text = f"Payment within {days} days, by {due_date.isoformat()}."
    if seller.iban.strip():
        text += f" Bank transfer to IBAN {seller.iban.strip()}."
    return text


def document_from_invoice(
    invoice: Invoice,
    seller: Party | None,
    buyer: Party | None,
    line_taxes: Mapping[str, LineTax] | Sequence[LineTax],
    *,
    credited: CreditedInvoice | None = None,
    exemptions: Mapping[TaxCategory, Exemption] | None = None,
    payment_terms: str | None = None,
    note: str = "",
) -> Document:
    """The document of an engine/store ``Invoice``: a draft, a confirmed invoice or a credit note.

    ``line_taxes`` gives each invoice line its VAT: a mapping by contract line id (the contract
    line's ``TaxCategory``/``TaxPercent`` after ``tax.resolve``) or a sequence aligned with
    ``invoice.lines``. A credit note is told by ``credited`` or, on records that carry them, by
    ``invoice.is_credit_note`` with ``credited_invoice_id``/``credited_number`` (R21); its record
    has the negative figures the store keeps (X5), and the document carries them positive under
    type code 381. On an invoice, details whose ``status`` is Removed or WrittenOff (R22: no longer
    billed) are left out, and so is a line left with nothing billed.

    Raises ``DocumentError`` with every problem at once: a cancelled invoice, parties that
    EN 16931 finds incomplete (``missing_fields``), a line without tax, a tax category that does
    not allow its rate.
    """
    problems: list[str] = []
    if invoice.status is Status.CANCELLED:
        raise DocumentError([f"invoice {invoice.invoice_id} is cancelled and has no document"])
    credited = credited or _credited_of(invoice)
    draft = invoice.status is Status.DRAFT
    kind = "credit note" if credited is not None else "invoice"
    if credited is not None and draft:
        problems.append(f"credit note {invoice.invoice_id} is not confirmed")
    if not draft and not invoice.invoice_number:
        problems.append(f"confirmed {kind} {invoice.invoice_id} has no number")
    sign = -1 if credited is not None else 1
    taxes = _taxes_by_line(invoice, line_taxes, problems)
    lines: list[DocumentLine] = []
    for line, tax in zip(invoice.lines, taxes, strict=True):
        billed = [d for d in line.details if credited is not None or _billed(d)]
        if line.details and not billed and line.amount == 0:
            continue  # every detail removed or written off on the draft (R22)
        net = sign * line.amount
        if net <= 0:
            problems.append(
                f"line {line.line_number} of {kind} {invoice.invoice_id} has amount {line.amount}"
            )
        details = tuple(
            DocumentDetail(
                d.source_id,
                d.date,
                d.description or (d.txn_class.value if d.txn_class else d.source_type.value),
                d.quantity,
                d.unit_price,
                sign * d.amount,
            )
            for d in billed
        )
        dates = [d.date for d in billed]
        lines.append(
            DocumentLine(
                line_id=str(line.line_number),
                name=line.line_name or line.contract_line_id,
                net_amount=net,
                category=tax.category if tax else TaxCategory.EXEMPT,
                percent=tax.percent if tax else Decimal(0),
                details=details,
                contract_line_id=line.contract_line_id,
                period=(min(dates), max(dates)) if dates else None,
            )
        )
    if not lines:
        problems.append(f"{kind} {invoice.invoice_id} has no lines")
    categories = [line.category for line in lines]
    problems.extend(missing_fields(seller, buyer, categories))
    summary: TaxSummary | None = None
    if not problems:
        try:
            summary = compute(
                (TaxableLine(li.net_amount, li.category, li.percent) for li in lines),
                invoice.currency,
                dict(exemptions) if exemptions else None,
            )
        except TaxError as error:
            problems.append(str(error))
        else:  # a credit note states the tax its credits take of the invoice's (tax.credit_tax)
            stated = getattr(invoice, "stated_tax", ())
            summary = with_stated(summary, [(c, p, sign * t) for c, p, t in stated])
    if problems or summary is None or seller is None or buyer is None:
        raise DocumentError(problems)
    number = invoice.invoice_id if draft else (invoice.invoice_number or invoice.invoice_id)
    return Document(
        document_type=DocumentType.CREDIT_NOTE if credited else DocumentType.INVOICE,
        number=number,
        invoice_id=invoice.invoice_id,
        draft=draft,
        issue_date=invoice.invoice_date,
        due_date=None if credited else invoice.due_date,
        currency=invoice.currency,
        seller=seller,
        buyer=buyer,
        lines=tuple(lines),
        tax=summary,
        payment_terms=payment_terms
        or default_payment_terms(invoice.invoice_date, invoice.due_date, seller, credited),
        contract_id=invoice.contract_id,
        contract_name=invoice.contract_name,
        credited=credited,
        note=note,
    )


# Detail statuses (X5) that are not billed on the invoice they sit on (R22).
_NOT_BILLED = frozenset({"Removed", "WrittenOff"})


def _billed(detail: object) -> bool:
    status = getattr(detail, "status", None)
    return status is None or str(status) not in _NOT_BILLED


def _credited_of(invoice: Invoice) -> CreditedInvoice | None:
    """The credited invoice named by a credit-note record (R21), if the record says it is one."""
    if not getattr(invoice, "is_credit_note", False):
        return None
    return CreditedInvoice(
        getattr(invoice, "credited_invoice_id", None) or "",
        getattr(invoice, "credited_number", None) or "",
    )


def _taxes_by_line(
    invoice: Invoice,
    line_taxes: Mapping[str, LineTax] | Sequence[LineTax],
    problems: list[str],
) -> list[LineTax | None]:
    if isinstance(line_taxes, Mapping):
        found = [line_taxes.get(line.contract_line_id) for line in invoice.lines]
    else:
        if len(line_taxes) != len(invoice.lines):
            problems.append(
                f"{len(line_taxes)} line taxes given for the {len(invoice.lines)} lines of "
                f"invoice {invoice.invoice_id}"
            )
            return [None] * len(invoice.lines)
        found = list(line_taxes)
    for line, tax in zip(invoice.lines, found, strict=True):
        if tax is None:
            problems.append(
                f"line {line.line_number} (contract line {line.contract_line_id}) has no tax "
                "category and percent"
            )
    return found
