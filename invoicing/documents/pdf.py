"""The invoice or credit note as an A4 PDF (SPEC E3), with fpdf2.

Fonts are DejaVu Sans (a Latin, Greek and Cyrillic subset shipped in ``fonts/``, Bitstream Vera
and Arev licences) embedded as subsets, so the PDF looks the same everywhere and can be PDF/A.
Every PDF is written PDF/A-3B (fpdf2 adds the sRGB output intent); a confirmed invoice or a
credit note also gets its CII XML embedded as Factur-X EN 16931 by the ``factur-x`` library (XMP
metadata, ``factur-x.xml`` attachment with AFRelationship ``Data``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import facturx
from fontTools.ttLib import TTFont
from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout, XPos, YPos

from invoicing.documents.cii import build_cii
from invoicing.documents.document import (
    Document,
    DocumentError,
    en16931_problems,
    format_amount,
    format_percent,
)
from invoicing.money import decimals_of, minor_unit
from invoicing.parties import Party
from invoicing.tax import CATEGORY_NAMES, TaxCategory

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
_MARGIN = 18.0
_GREY = (96, 96, 96)
_LIGHT = (235, 235, 235)
_BLACK = (0, 0, 0)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
MAX_CELL_TEXT = 1_200  # characters: about 30 lines of a description cell, well inside a page


def render_pdf(
    document: Document, *, embed_xml: bool | None = None, cii_xml: bytes | None = None
) -> bytes:
    """The document as PDF bytes.

    ``embed_xml``: None (default) embeds the CII for a confirmed invoice or a credit note whose
    amounts EN 16931 can state (a draft is a proforma: its PDF carries no e-invoice); True
    insists (``DocumentError`` when it cannot be done); False never embeds. ``cii_xml`` is the
    XML to embed (default: ``build_cii(document)``), so that a caller that serves both can embed
    exactly the bytes it serves.
    """
    unshown = unprintable(document)
    if unshown:
        raise DocumentError(
            [
                f"the PDF's font has no letters for {', '.join(repr(c) for c in unshown[:20])} "
                "(in the parties' or lines' text); the XML carries them: ask for format xml or "
                "ubl, or give the text in Latin, Greek or Cyrillic letters"
            ]
        )
    problems = en16931_problems(document)
    if embed_xml is None:
        embed_xml = not document.draft and not problems
    if embed_xml and document.draft:
        raise DocumentError([f"{document.invoice_id} is a draft: its PDF is a proforma"])
    if embed_xml and problems:
        raise DocumentError(problems)
    pdf = _InvoicePdf(document)
    pdf.render()
    content = bytes(pdf.output())
    if not embed_xml:
        return content
    xml = cii_xml if cii_xml is not None else build_cii(document)
    return bytes(
        facturx.generate_from_binary(
            content,
            xml,
            flavor="factur-x",
            level="en16931",
            check_xsd=False,  # validated by the test suite; the library would re-parse the XSD
            pdf_metadata=_metadata(document),
            lang="en",
        )
    )


@functools.cache
def _glyphs() -> frozenset[int]:
    """The code points both bundled fonts can draw."""
    found = None
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        with TTFont(FONTS / name, lazy=True) as font:
            points = frozenset(font.getBestCmap())
        found = points if found is None else found & points
    return found or frozenset()


def unprintable(document: Document) -> list[str]:
    """The characters of the document's texts that the PDF could not show (they would vanish
    from it silently), in the order they first appear."""
    texts = [
        document.number,
        document.contract_id,
        document.contract_name,
        document.payment_terms,
        document.note,
    ]
    for party in (document.seller, document.buyer):
        texts += [getattr(party, f.name) for f in dataclasses.fields(party)]
    for line in document.lines:
        texts += [line.name, line.contract_line_id]
        texts += [t for d in line.details for t in (d.source_id, d.description)]
    glyphs = _glyphs()
    missing: dict[str, None] = {}
    for text in texts:
        for ch in text or "":
            if ord(ch) not in glyphs and not _CONTROL.match(ch) and ch not in "\n\r":
                missing[ch] = None
    return list(missing)


def title_of(document: Document) -> str:
    if document.is_credit_note:
        return "CREDIT NOTE"
    return "PROFORMA" if document.draft else "INVOICE"


def _metadata(document: Document) -> dict[str, str]:
    title = f"{document.seller.name}: {title_of(document).title()} {document.number}"
    return {
        "author": document.seller.name,
        "keywords": "Factur-X, Invoice",
        "title": title,
        "subject": (
            f"{title_of(document).title()} {document.number} dated "
            f"{document.issue_date.isoformat()} issued by {document.seller.name}"
        ),
    }


def _address_lines(party: Party) -> Iterator[str]:
    if party.street.strip():
        yield party.street.strip()
    town = " ".join(p for p in (party.postal_code.strip(), party.city.strip()) if p)
    if town:
        yield town
    if party.country_code.strip():
        yield party.country_code.strip()
    if party.vat_id.strip():
        yield f"VAT ID {party.vat_id.strip()}"
    if party.legal_id.strip():
        yield f"Registration {party.legal_id.strip()}"
    if party.email.strip():
        yield party.email.strip()


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


class _InvoicePdf(FPDF):
    def __init__(self, document: Document) -> None:
        super().__init__(orientation="P", unit="mm", format="A4", enforce_compliance="PDFA_3B")
        self.document = document
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=_MARGIN + 6)
        self.set_lang("en")
        self.set_title(_metadata(document)["title"])
        self.set_author(document.seller.name)
        self.set_subject(_metadata(document)["subject"])
        self.set_creator("invoicing")
        self.alias_nb_pages()

    def normalize_text(self, text: str) -> str:
        """Every text fpdf2 writes passes here: control characters (a tab, a stray \\x01 from a
        spreadsheet) have no glyph, so they become spaces; line breaks stay. A text longer than
        a table cell can hold on one page is cut with an ellipsis (the XML keeps it whole)."""
        if len(text) > MAX_CELL_TEXT:
            text = text[: MAX_CELL_TEXT - 1] + "…"
        return super().normalize_text(_CONTROL.sub(" ", text))

    # -- page furniture --

    def footer(self) -> None:
        self.set_y(-_MARGIN)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*_GREY)
        text = f"{self.document.seller.name} · {title_of(self.document).title()} "
        text += f"{self.document.number} · page {self.page_no()}/{{nb}}"
        self.cell(0, 4, text, align="C")
        self.set_text_color(*_BLACK)

    # -- the document --

    def render(self) -> None:
        self.add_page()
        self._head()
        self._buyer()
        if self.document.draft:
            self._proforma_banner()
        self._lines()
        self._tax_and_totals()
        self._terms()

    def _head(self) -> None:
        doc = self.document
        top = self.get_y()
        # the seller, left
        self.set_font(FONT, "B", 13)
        self.multi_cell(88, 6, doc.seller.name, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 8.5)
        for text in _address_lines(doc.seller):
            self.cell(88, 4.2, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        seller_bottom = self.get_y()
        # the title and the references, right
        x = self.w - _MARGIN - 82
        self.set_xy(x, top)
        self.set_font(FONT, "B", 18)
        self.cell(82, 9, title_of(doc), align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
        self.ln(1)
        rows = [("Number", doc.number)]
        if doc.draft:
            rows = [("Draft", doc.invoice_id)]
        rows.append(("Date", _day(doc.issue_date)))
        if doc.due_date is not None:
            rows.append(("Due date", _day(doc.due_date)))
        if doc.credited is not None:
            credited = doc.credited.invoice_number
            if doc.credited.issue_date:
                credited += f" of {_day(doc.credited.issue_date)}"
            rows.append(("Credits invoice", credited))
        if doc.contract_id:
            rows.append(("Contract", doc.contract_id))
        if period := doc.period:
            rows.append(("Period", f"{_day(period[0])} to {_day(period[1])}"))
        rows.append(("Currency", doc.currency))
        for label, value in rows:
            self.set_x(x)
            self.set_font(FONT, "", 8.5)
            self.set_text_color(*_GREY)
            self.cell(24, 4.6, label)
            self.set_text_color(*_BLACK)
            self.set_font(FONT, "B" if label in ("Number", "Draft") else "", 8.5)
            self.multi_cell(58, 4.6, value, align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
        self.set_y(max(seller_bottom, self.get_y()) + 6)

    def _buyer(self) -> None:
        doc = self.document
        self.set_font(FONT, "", 8)
        self.set_text_color(*_GREY)
        self.cell(
            0,
            4,
            "CREDIT TO" if doc.is_credit_note else "BILL TO",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.set_text_color(*_BLACK)
        self.set_font(FONT, "B", 10.5)
        self.multi_cell(100, 5.2, doc.buyer.name, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 8.5)
        for text in _address_lines(doc.buyer):
            self.cell(100, 4.2, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if doc.contract_name:
            self.ln(2)
            self.set_font(FONT, "", 8.5)
            self.multi_cell(
                0,
                4.2,
                f"Contract {doc.contract_id}: {doc.contract_name}",
                align="L",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        self.ln(5)

    def _proforma_banner(self) -> None:
        self.set_fill_color(255, 236, 200)
        self.set_font(FONT, "B", 9)
        text = (
            f"PROFORMA {self.document.invoice_id}: a draft for review, not a VAT invoice. "
            "The invoice gets its number when it is confirmed."
        )
        self.multi_cell(
            0, 5, text, fill=True, padding=2, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.set_fill_color(255, 255, 255)
        self.ln(4)

    def _lines(self) -> None:
        doc = self.document
        currency = doc.currency
        line_style = FontFace(family=FONT, emphasis="BOLD", size_pt=9)
        detail_style = FontFace(family=FONT, emphasis="", size_pt=7.5, color=_GREY)
        heading = FontFace(family=FONT, emphasis="BOLD", size_pt=8, fill_color=_LIGHT)
        self.set_font(FONT, "", 8)
        with self.table(
            col_widths=(8, 20, 22, 58, 24, 19, 23),
            text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
            headings_style=heading,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            line_height=4.4,
            padding=(0.8, 1, 0.8, 1),
            width=self.epw,
        ) as table:
            table.row(
                ["#", "Date", "Item", "Description", "Qty × price", "VAT", f"Amount {currency}"]
            )
            for line in doc.lines:
                row = table.row(style=line_style)
                row.cell(line.line_id)
                row.cell(line.name, colspan=4)
                row.cell(_vat_label(line.category, line.percent))
                row.cell(format_amount(line.net_amount, currency))
                for detail in line.details:
                    row = table.row(style=detail_style)
                    row.cell("")
                    row.cell(_day(detail.date))
                    row.cell(detail.source_id)
                    row.cell(detail.description)
                    quantity = ""
                    if detail.quantity is not None and detail.unit_price is not None:
                        quantity = (
                            f"{format_percent(detail.quantity)} × "
                            f"{_price(detail.unit_price, currency)}"
                        )
                    row.cell(quantity)
                    row.cell("")
                    row.cell(format_amount(detail.amount, currency))
        self.ln(5)

    def _tax_and_totals(self) -> None:
        doc = self.document
        currency = doc.currency
        heading = FontFace(family=FONT, emphasis="BOLD", size_pt=8, fill_color=_LIGHT)
        self.set_font(FONT, "", 8)
        if self.will_page_break(12 + 6 * len(doc.tax.lines) + 30):
            self.add_page()
        with self.table(
            col_widths=(48, 16, 34, 30, 46),
            text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT"),
            headings_style=heading,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            line_height=4.4,
            padding=(0.8, 2, 0.8, 2),
            width=self.epw,
        ) as table:
            table.row(
                [
                    "VAT breakdown",
                    "Rate",
                    f"Taxable {currency}",
                    f"VAT {currency}",
                    "Exemption reason",
                ]
            )
            for group in doc.tax.lines:
                reason = ""
                if group.exemption:
                    reason = " ".join(p for p in (group.exemption.code, group.exemption.text) if p)
                rate = (
                    ""
                    if group.category is TaxCategory.NOT_SUBJECT
                    else (f"{format_percent(group.percent)} %")
                )
                table.row(
                    [
                        f"{group.category.value} · {CATEGORY_NAMES[group.category]}",
                        rate,
                        format_amount(group.basis, currency),
                        format_amount(group.tax, currency),
                        reason,
                    ]
                )
        self.ln(4)
        label_x = self.w - _MARGIN - 90
        totals = [
            ("Net amount", doc.tax.net),
            ("VAT", doc.tax.tax),
        ]
        total_label = "Total credited" if doc.is_credit_note else "Total amount due"
        for label, amount in totals:
            self.set_x(label_x)
            self.set_font(FONT, "", 9)
            self.cell(55, 5.5, label)
            self.cell(
                35,
                5.5,
                f"{format_amount(amount, currency)} {currency}",
                align="R",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        self.set_x(label_x)
        self.set_font(FONT, "B", 10.5)
        self.set_fill_color(*_LIGHT)
        self.cell(55, 7, total_label, fill=True)
        self.cell(
            35,
            7,
            f"{format_amount(doc.tax.gross, currency)} {currency}",
            align="R",
            fill=True,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.ln(6)

    def _terms(self) -> None:
        doc = self.document
        self.set_font(FONT, "B", 8.5)
        self.cell(0, 4.6, "Payment terms", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 8.5)
        self.multi_cell(0, 4.4, doc.payment_terms, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if not doc.draft and not doc.is_credit_note:
            self.multi_cell(
                0,
                4.4,
                f"Please quote {doc.number} with your payment.",
                align="L",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        if doc.note:
            self.ln(2)
            self.multi_cell(0, 4.4, doc.note, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _vat_label(category: TaxCategory, percent: Decimal) -> str:
    if category is TaxCategory.NOT_SUBJECT:
        return "O"
    return f"{category.value} {format_percent(percent)} %"


def _price(price: Decimal, currency: str) -> str:
    """A unit price in the currency's minor unit, or with the decimals it has beyond it (W7
    allows 6)."""
    if decimals_of(price.normalize()) <= minor_unit(currency):
        return format_amount(price, currency)
    return f"{price.normalize():,f}"
