"""The PDF (E3): A4, embedded fonts, the parties, the number or PROFORMA, the lines with their
details, the tax breakdown, the totals, the payment terms; for a confirmed invoice and a credit
note the CII embedded as Factur-X (PDF/A-3). Read back with pypdf and factur-x."""

from __future__ import annotations

from dataclasses import replace
from io import BytesIO

import facturx
import pypdf
import pytest

from invoicing.documents.cii import FILENAME, build_cii
from invoicing.documents.document import Document, DocumentError, format_amount, format_percent
from invoicing.documents.pdf import render_pdf
from invoicing.model import Status
from tests.documents.builders import credit_note, document, invoice, line, taxes
from tests.documents.scenarios import credit_of_categories, two_groups


def text_of(pdf: bytes) -> str:
    reader = pypdf.PdfReader(BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def assert_shows_the_document(text: str, doc: Document) -> None:
    currency = doc.currency
    for expected in (
        doc.seller.name,
        doc.seller.street,
        f"{doc.seller.postal_code} {doc.seller.city}",
        f"VAT ID {doc.seller.vat_id}",
        doc.buyer.name,
        doc.buyer.street,
        f"{doc.buyer.postal_code} {doc.buyer.city}",
        f"VAT ID {doc.buyer.vat_id}",
        doc.issue_date.isoformat(),
        doc.number,
    ):
        assert expected in text, expected
    for li in doc.lines:
        assert f"{li.line_id} {li.name}" in text
        assert format_amount(li.net_amount, currency) in text
        for detail in li.details:
            assert f"{detail.date.isoformat()} {detail.source_id}" in text
            assert format_amount(detail.amount, currency) in text
    for group in doc.tax.lines:
        row = (
            f"{format_percent(group.percent)} % {format_amount(group.basis, currency)} "
            f"{format_amount(group.tax, currency)}"
        )
        assert row in text, row
    assert f"Net amount {format_amount(doc.tax.net, currency)} {currency}" in text
    assert f"VAT {format_amount(doc.tax.tax, currency)} {currency}" in text
    assert f"{format_amount(doc.tax.gross, currency)} {currency}" in text
    assert " ".join(doc.payment_terms.split()[:4]) in text


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY", "KWD"])
def test_a_confirmed_invoice_shows_everything_and_embeds_its_cii(currency):
    doc = two_groups(currency)
    pdf = render_pdf(doc)
    text = text_of(pdf)
    assert "INVOICE" in text and f"Number {doc.number}" in text
    assert_shows_the_document(text, doc)
    assert f"Due date {doc.due_date.isoformat()}" in text
    assert f"Total amount due {format_amount(doc.tax.gross, currency)} {currency}" in text
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert name == FILENAME
    assert xml == build_cii(doc)


def test_the_embedded_xml_is_exactly_the_one_given(validator):
    doc = two_groups("EUR")
    xml = build_cii(doc)
    pdf = render_pdf(doc, cii_xml=xml)
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False)[1] == xml
    assert validator.check_cii(facturx.get_xml_from_pdf(pdf, check_xsd=False)[1]) == []


def test_a_draft_says_proforma_with_its_invoice_id_and_embeds_nothing():
    doc = two_groups("EUR", Status.DRAFT)
    pdf = render_pdf(doc)
    text = text_of(pdf)
    assert "PROFORMA" in text and f"Draft {doc.invoice_id}" in text
    assert "not a VAT invoice" in text
    assert "INV-000042" not in text  # a draft has no number
    assert_shows_the_document(text, doc)
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
    with pytest.raises(DocumentError, match="draft"):
        render_pdf(doc, embed_xml=True)


def test_a_credit_note_shows_the_credited_invoice_and_embeds_a_381():
    doc = credit_of_categories("EUR")
    pdf = render_pdf(doc)
    text = text_of(pdf)
    assert "CREDIT NOTE" in text and "Number CRN-000007" in text
    assert "Credits invoice INV-000042 of 2020-10-05" in text
    assert "CREDIT TO" in text
    assert f"Total credited {format_amount(doc.tax.gross, 'EUR')} EUR" in text
    assert_shows_the_document(text, doc)
    for reason in ("VATEX-EU-AE Reverse charge", "Exempt from VAT"):
        assert reason in text
    xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)[1]
    assert xml == build_cii(doc) and b"<ram:TypeCode>381</ram:TypeCode>" in xml


def test_a4_with_embedded_truetype_fonts_and_pdf_a_3_metadata():
    pdf = render_pdf(two_groups("EUR"))
    reader = pypdf.PdfReader(BytesIO(pdf))
    page = reader.pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    fonts = page["/Resources"]["/Font"]
    assert len(fonts) == 2
    for ref in fonts.values():
        font = ref.get_object()
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, font  # the TrueType program is embedded
        assert "DejaVuSans" in str(font["/BaseFont"])
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in xmp
    assert b"EN 16931" in xmp  # fx:ConformanceLevel
    assert "/OutputIntents" in reader.trailer["/Root"]


def test_a_long_invoice_runs_over_pages_and_keeps_every_amount():
    amounts = [f"{i}.{i % 100:02d}" for i in range(1, 161)]
    inv = invoice(
        "EUR", [line(1, "Implementation work", *amounts[:100]), line(2, "Support", *amounts[100:])]
    )
    doc = document(inv, taxes(("S", "19"), ("S", "7")))
    pdf = render_pdf(doc)
    reader = pypdf.PdfReader(BytesIO(pdf))
    assert len(reader.pages) >= 3
    text = text_of(pdf)
    assert f"page 1/{len(reader.pages)}" in text
    assert_shows_the_document(text, doc)
    assert text.count("Qty × price") >= 2  # the table headings repeat on each page


def test_three_decimal_amounts_get_a_plain_pdf_because_en16931_cannot_state_them():
    inv = invoice("KWD", [line(1, "Consulting", "12.345", "0.005")])
    doc = document(inv, taxes(("S", "5")))
    pdf = render_pdf(doc)
    text = text_of(pdf)
    assert_shows_the_document(text, doc)
    assert "12.345" in text and "0.005" in text and "12.968 KWD" in text
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
    with pytest.raises(DocumentError, match="BR-DEC"):
        render_pdf(doc, embed_xml=True)


def test_a_credit_note_of_a_kwd_invoice_mirrors_it():
    inv = invoice("KWD", [line(1, "Consulting", "1200.500")])
    doc = document(credit_note(inv), taxes(("S", "10")), credited=inv)
    assert (doc.tax.net, doc.tax.tax) == (inv.amount, inv.amount / 10)
    assert "1,320.550 KWD" in text_of(render_pdf(doc))


def test_control_characters_and_any_script_are_printable(caplog):
    doc = two_groups("EUR")
    name = "Ελληνική ΑΕ · ООО Ромашка · Đặng & Fils\x01\tSàrl"
    doc = replace(doc, buyer=replace(doc.buyer, name=name))
    words = " ".join(text_of(render_pdf(doc)).split())  # the name wraps in the buyer block
    assert "Ελληνική ΑΕ · ООО Ромашка · Đặng & Fils Sàrl" in words
    assert "missing the following glyphs" not in caplog.text


def test_letters_the_font_cannot_show_are_refused_not_dropped():
    from tests.documents.builders import BUYER

    doc = replace(two_groups("JPY"), buyer=replace(BUYER, name="株式会社テスト", city="東京"))
    with pytest.raises(DocumentError, match="no letters for '株'"):
        render_pdf(doc)


def test_an_overlong_line_name_is_cut_in_the_pdf_not_a_crash():
    doc = two_groups("EUR")
    long_line = replace(doc.lines[0], name="L " * 3_000)
    text = text_of(render_pdf(replace(doc, lines=(long_line, *doc.lines[1:]))))
    assert "L L L" in text and "…" in text
