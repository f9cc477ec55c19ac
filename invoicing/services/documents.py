"""Invoice documents from the store (E3, H15, ``document``): an invoice or credit note as a PDF, a
Factur-X CII or a UBL e-invoice.

The buyer is the invoice's customer as the contract's configuration has it now (its address and
VAT id, E1), the seller the latest uploaded Seller sheet (W11); the lines' VAT is what the invoice
itself carries (copied from the contract line when it was planned, so a later rate change never
rewrites an issued invoice). Whatever EN 16931 needs and the store lacks is refused with every
missing item at once (``DocumentRefused``: 409 / exit 2).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from azure.core.exceptions import AzureError, ResourceModifiedError

from invoicing.errors import DocumentRefused
from invoicing.model import Contract, Customer, Invoice, Party, Status
from invoicing.requests import DocumentFormat
from invoicing.services.invoices import get_invoice, iter_invoices
from invoicing.storage import codec
from invoicing.storage.keys import encode_key
from invoicing.storage.store import Store
from invoicing.tax import LineTax

log = logging.getLogger("invoicing.documents")

MEDIA_TYPES = {
    DocumentFormat.PDF: "application/pdf",
    DocumentFormat.CII: "application/xml",
    DocumentFormat.UBL: "application/xml",
}
SUFFIXES = {
    DocumentFormat.PDF: ".pdf",
    DocumentFormat.CII: ".cii.xml",
    DocumentFormat.UBL: ".ubl.xml",
}


@dataclass(frozen=True, slots=True)
class RenderedDocument:
    invoice_id: str
    content: bytes
    media_type: str
    filename: str


def invoice_document(store: Store, invoice_id: str, fmt: DocumentFormat) -> RenderedDocument:
    """One invoice's or credit note's document (NotFound, DocumentRefused)."""
    invoice = get_invoice(store, invoice_id)
    snapshot = codec.parties_of(store.header(invoice.contract_id, invoice_id) or {})
    if snapshot is not None:
        return render_for(invoice, *snapshot, fmt)
    return render(invoice, configured_contract(store, invoice.contract_id), store.seller(), fmt)


def configured_contract(store: Store, contract_id: str) -> Contract | None:
    """The contract's configuration as uploaded last (no items: one small range read)."""
    rows = store.partition_rows(encode_key(contract_id), *codec.CONFIG_KEYS)
    return codec.contract_from_config_rows(rows)


def parties_now(store: Store, invoice: Invoice) -> tuple[Party | None, Party]:
    """(seller, buyer) of ``invoice`` as the store has them now."""
    return store.seller(), buyer_of(configured_contract(store, invoice.contract_id), invoice)


def snapshot_parties(store: Store, contract_id: str, invoice_id: str) -> None:
    """Keep on a numbered invoice's (or credit note's) header the parties it is issued to, so
    that its documents stay what was issued when a later upload changes an address (E3).
    Best effort: the number is already given, so a storage error here is logged, not raised
    (that invoice's documents then show the parties as uploaded at the time of asking)."""
    try:
        _snapshot(store, contract_id, invoice_id)
    except AzureError:
        log.warning("could not keep the parties of %s; its documents use the latest", invoice_id)


def _snapshot(store: Store, contract_id: str, invoice_id: str) -> None:
    for _attempt in range(5):
        header = store.header(contract_id, invoice_id)
        if header is None or codec.parties_of(header) is not None:
            return
        invoice = codec.invoice_from(header, (), ())
        credited = (
            store.header(contract_id, invoice.credited_invoice_id)
            if invoice.is_credit_note and invoice.credited_invoice_id
            else None
        )
        # a credit note goes to whom its invoice was issued to
        seller, buyer = codec.parties_of(credited or {}) or parties_now(store, invoice)
        try:
            store.replace_if(
                store.table, codec.with_parties(header, seller, buyer), header["_etag"], "parties"
            )
            return
        except ResourceModifiedError:
            continue  # the header changed meanwhile (a credit recorded): look again


def range_documents(
    store: Store,
    fmt: DocumentFormat,
    start: date | None = None,
    end: date | None = None,
    contract: str | None = None,
) -> Iterator[RenderedDocument | tuple[str, Exception]]:
    """The documents of every live invoice and credit note dated in the range, in the export's
    order; an invoice that cannot have one yields ``(invoice_id, the refusal)`` instead, so one
    customer's missing address never stops the others' documents."""
    seller = store.seller()
    contracts: dict[str, Contract | None] = {}
    chunks = iter_invoices(store, start, end, contract=contract)  # one chunk in memory
    for invoice in (i for invoices, _ in chunks for i in invoices):
        if invoice.status is Status.CANCELLED:
            continue
        try:
            header = store.header(invoice.contract_id, invoice.invoice_id) or {}
            snapshot = codec.parties_of(header)
            if snapshot is not None:
                yield render_for(invoice, *snapshot, fmt)
                continue
            if invoice.contract_id not in contracts:
                contracts[invoice.contract_id] = configured_contract(store, invoice.contract_id)
            yield render(invoice, contracts[invoice.contract_id], seller, fmt)
        except DocumentRefused as refused:
            yield invoice.invoice_id, refused


def render(
    invoice: Invoice, contract: Contract | None, seller: Party | None, fmt: DocumentFormat
) -> RenderedDocument:
    """The document of ``invoice`` to its contract's customer (no storage)."""
    return render_for(invoice, seller, buyer_of(contract, invoice), fmt)


def buyer_of(contract: Contract | None, invoice: Invoice) -> Party:
    """The invoice's customer as a party: its address from the contract (when it still has the
    customer), its name as the invoice has it."""
    customer = _customer(contract, invoice.customer_id) if contract else None
    name = invoice.customer_name or invoice.customer_id
    return dataclasses.replace(customer.party(), name=name) if customer else Party(name)


def render_for(
    invoice: Invoice, seller: Party | None, buyer: Party | None, fmt: DocumentFormat
) -> RenderedDocument:
    """The document of ``invoice`` between these parties: DocumentRefused with every problem
    at once."""
    from fpdf.errors import FPDFException

    from invoicing.documents.cii import build_cii
    from invoicing.documents.document import document_from_invoice
    from invoicing.documents.pdf import render_pdf
    from invoicing.documents.ubl import build_ubl

    taxes = [LineTax(line.tax_category, line.tax_percent) for line in invoice.lines]
    document = document_from_invoice(invoice, seller, buyer, taxes)
    if fmt is DocumentFormat.PDF:
        try:
            content = render_pdf(document)
        except DocumentRefused:
            raise
        except (ValueError, FPDFException) as exc:  # a layout fpdf2 cannot make: say so
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            why = f"the PDF of {invoice.invoice_id} cannot be laid out: {reason}"
            raise DocumentRefused([why]) from exc
    elif fmt is DocumentFormat.CII:
        content = build_cii(document)
    else:
        content = build_ubl(document)
    name = (invoice.invoice_number if invoice.status is Status.CONFIRMED else None) or (
        invoice.invoice_id
    )
    return RenderedDocument(invoice.invoice_id, content, MEDIA_TYPES[fmt], _file_name(name, fmt))


def _customer(contract: Contract, customer_id: str) -> Customer | None:
    """The contract's customer (or a line's own customer, R2) with that id: the first that has
    an address, since a customer may be listed once per line with its address on one row."""
    found = [c for c in contract.customers if c.customer_id == customer_id]
    found += [c for line in contract.lines for c in line.customers if c.customer_id == customer_id]
    with_address = [c for c in found if c.country_code]
    return (with_address or found or [None])[0]


def _file_name(name: str, fmt: DocumentFormat) -> str:
    """ASCII letters, digits, ``-``, ``_`` and ``.`` (no leading dot): safe on every file system
    and in a Content-Disposition header as it is."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    return (safe.lstrip(".") or "document") + SUFFIXES[fmt]
