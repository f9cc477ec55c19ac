"""UBL 2.1 Invoice and CreditNote, Peppol BIS Billing 3.0 (SPEC E3, issue 14).

The same ``Document`` as the CII, in the EN 16931 UBL syntax binding, element by element in the
order of the OASIS UBL 2.1 XSD; ``validate.check_ubl`` runs that XSD and the CEN
``EN16931-UBL-validation.xslt``. The Peppol fields that this product knows are written
(CustomizationID, ProfileID, BuyerReference, electronic addresses from the parties' e-mail).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from lxml import etree

from invoicing.documents.cii import ELECTRONIC_MAIL, UNIT_ONE, line_note, payment_means_code
from invoicing.documents.document import (
    Document,
    DocumentError,
    DocumentLine,
    en16931_problems,
    format_percent,
    notes_of,
    xml_amount,
    xml_text,
)
from invoicing.parties import Party
from invoicing.tax import TaxCategory, TaxLine

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


def build_ubl(document: Document) -> bytes:
    """The document as a UBL 2.1 Invoice (380, or 325 for a draft) or CreditNote (381).

    Raises ``DocumentError`` when EN 16931 cannot state the amounts exactly
    (``document.en16931_problems``).
    """
    if problems := en16931_problems(document):
        raise DocumentError(problems)
    credit = document.is_credit_note
    namespace = CREDIT_NOTE_NS if credit else INVOICE_NS
    root = etree.Element(
        f"{{{namespace}}}{'CreditNote' if credit else 'Invoice'}",
        nsmap={None: namespace, "cac": CAC, "cbc": CBC},
    )
    currency = document.currency
    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", PROFILE_ID)
    _cbc(root, "ID", document.number)
    _cbc(root, "IssueDate", _iso(document.issue_date))
    if not credit and document.due_date is not None:
        _cbc(root, "DueDate", _iso(document.due_date))
    _cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode", document.type_code)
    for note in _notes(document):
        _cbc(root, "Note", note)
    _cbc(root, "DocumentCurrencyCode", currency)
    _cbc(root, "BuyerReference", document.buyer_reference)
    if period := document.period:
        _period(root, period)
    if document.credited is not None:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", document.credited.invoice_number)
        if document.credited.issue_date is not None:
            _cbc(reference, "IssueDate", _iso(document.credited.issue_date))
    if document.contract_id:
        _cbc(_cac(root, "ContractDocumentReference"), "ID", document.contract_id)
    _party(_cac(root, "AccountingSupplierParty"), document.seller)
    _party(_cac(root, "AccountingCustomerParty"), document.buyer)
    _delivery(root, document)
    _payment(root, document)
    _tax_total(root, document)
    totals = _cac(root, "LegalMonetaryTotal")
    _amount(totals, "LineExtensionAmount", document.tax.net, currency)
    _amount(totals, "TaxExclusiveAmount", document.tax.net, currency)
    _amount(totals, "TaxInclusiveAmount", document.tax.gross, currency)
    _amount(totals, "PayableAmount", document.tax.gross, currency)
    for line in document.lines:
        _line(root, line, currency, credit)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _notes(document: Document) -> list[str]:
    notes = notes_of(document)
    # EN 16931 has one invoice note per subject in UBL; join them (BT-22 is repeatable in CII).
    return [" ".join(notes)] if notes else []


def _party(parent: etree._Element, party: Party) -> None:
    element = _cac(parent, "Party")
    if party.email.strip():
        _cbc(element, "EndpointID", party.email.strip(), schemeID=ELECTRONIC_MAIL)
    _cbc(_cac(element, "PartyName"), "Name", party.name.strip())
    address = _cac(element, "PostalAddress")
    if party.street.strip():
        _cbc(address, "StreetName", party.street.strip())
    if party.city.strip():
        _cbc(address, "CityName", party.city.strip())
    if party.postal_code.strip():
        _cbc(address, "PostalZone", party.postal_code.strip())
    _cbc(_cac(address, "Country"), "IdentificationCode", party.country_code.strip())
    if party.vat_id.strip():
        scheme = _cac(element, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", party.vat_id.strip())
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(element, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.name.strip())
    if party.legal_id.strip():
        _cbc(legal, "CompanyID", party.legal_id.strip())


def _delivery(root: etree._Element, document: Document) -> None:
    period = document.period
    intra = TaxCategory.INTRA_COMMUNITY in document.categories
    if period is None and not intra:
        return
    delivery = _cac(root, "Delivery")
    if period is not None:
        _cbc(delivery, "ActualDeliveryDate", _iso(period[1]))  # BT-72
    if intra:  # BR-IC-12: deliver-to country
        location = _cac(delivery, "DeliveryLocation")
        address = _cac(location, "Address")
        _cbc(_cac(address, "Country"), "IdentificationCode", document.buyer.country_code.strip())


def _payment(root: etree._Element, document: Document) -> None:
    iban = document.seller.iban.replace(" ", "").strip()
    if iban and not document.is_credit_note:
        means = _cac(root, "PaymentMeans")
        _cbc(means, "PaymentMeansCode", payment_means_code(document.currency))
        if not document.draft:
            _cbc(means, "PaymentID", document.number)
        _cbc(_cac(means, "PayeeFinancialAccount"), "ID", iban)
    _cbc(_cac(root, "PaymentTerms"), "Note", document.payment_terms)


def _tax_total(root: etree._Element, document: Document) -> None:
    currency = document.currency
    total = _cac(root, "TaxTotal")
    _amount(total, "TaxAmount", document.tax.tax, currency)
    for group in document.tax.lines:
        _tax_subtotal(total, group, currency)


def _tax_subtotal(total: etree._Element, group: TaxLine, currency: str) -> None:
    subtotal = _cac(total, "TaxSubtotal")
    _amount(subtotal, "TaxableAmount", group.basis, currency)
    _amount(subtotal, "TaxAmount", group.tax, currency)
    category = _cac(subtotal, "TaxCategory")
    _cbc(category, "ID", group.category.value)
    if group.category is not TaxCategory.NOT_SUBJECT:  # BR-O-05
        _cbc(category, "Percent", format_percent(group.percent))
    if group.exemption and group.exemption.code:
        _cbc(category, "TaxExemptionReasonCode", group.exemption.code)
    if group.exemption and group.exemption.text:
        _cbc(category, "TaxExemptionReason", group.exemption.text)
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")


def _line(root: etree._Element, line: DocumentLine, currency: str, credit: bool) -> None:
    element = _cac(root, "CreditNoteLine" if credit else "InvoiceLine")
    _cbc(element, "ID", line.line_id)
    if note := line_note(line, currency):
        _cbc(element, "Note", note)
    _cbc(element, "CreditedQuantity" if credit else "InvoicedQuantity", "1", unitCode=UNIT_ONE)
    _amount(element, "LineExtensionAmount", line.net_amount, currency)
    if line.period:
        _period(element, line.period)
    item = _cac(element, "Item")
    _cbc(item, "Name", line.name)
    if line.contract_line_id:
        _cbc(_cac(item, "SellersItemIdentification"), "ID", line.contract_line_id)
    category = _cac(item, "ClassifiedTaxCategory")
    _cbc(category, "ID", line.category.value)
    if line.category is not TaxCategory.NOT_SUBJECT:
        _cbc(category, "Percent", format_percent(line.percent))
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")
    price = _cac(element, "Price")
    _amount(price, "PriceAmount", line.net_amount, currency)


def _period(parent: etree._Element, period: tuple[date, date]) -> None:
    element = _cac(parent, "InvoicePeriod")
    _cbc(element, "StartDate", _iso(period[0]))
    _cbc(element, "EndDate", _iso(period[1]))


# ---- lxml helpers -----------------------------------------------------------------------------


def _cac(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{tag}")


def _cbc(parent: etree._Element, tag: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{tag}", attributes)
    element.text = xml_text(text)
    return element


def _amount(parent: etree._Element, tag: str, value: Decimal, currency: str) -> None:
    _cbc(parent, tag, xml_amount(value, currency), currencyID=currency)


def _iso(value: date) -> str:
    return value.isoformat()
