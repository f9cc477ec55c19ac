"""The adapter from the engine's ``Invoice`` to the document record (E3)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import pytest

from invoicing.documents.cii import build_cii
from invoicing.documents.document import (
    CreditedInvoice,
    DocumentError,
    DocumentType,
    document_from_invoice,
    format_amount,
    xml_text,
)
from invoicing.documents.ubl import build_ubl
from invoicing.model import Status
from invoicing.parties import Party
from invoicing.tax import LineTax, TaxCategory
from tests.documents.builders import BUYER, SELLER, credit_note, document, invoice, line, taxes

S19 = LineTax(TaxCategory.STANDARD, Decimal("19"))
S7 = LineTax(TaxCategory.STANDARD, Decimal("7"))


def two_lines(**kwargs):
    return invoice(
        "EUR", [line(1, "Work", "100.00", "0.10"), line(2, "Milestone", "50.00")], **kwargs
    )


def test_a_confirmed_invoice_carries_its_number_and_computed_tax():
    doc = document_from_invoice(two_lines(), SELLER, BUYER, {"L1": S19, "L2": S7})
    assert doc.document_type is DocumentType.INVOICE and doc.type_code == "380"
    assert (doc.number, doc.invoice_id, doc.draft) == (
        "INV-000042",
        "INV-20201005-0123456789",
        False,
    )
    assert [(t.basis, t.tax) for t in doc.tax.lines] == [
        (Decimal("100.10"), Decimal("19.02")),
        (Decimal("50.00"), Decimal("3.50")),
    ]
    assert (doc.tax.net, doc.tax.tax, doc.tax.gross) == (
        Decimal("150.10"),
        Decimal("22.52"),
        Decimal("172.62"),
    )
    assert doc.due_date.isoformat() == "2020-11-04"
    assert doc.payment_terms == (
        "Payment within 30 days, by 2020-11-04. Bank transfer to IBAN DE89370400440532013000."
    )
    assert doc.period[0].isoformat() == "2020-09-28" and doc.period[1].isoformat() == "2020-09-29"
    first = doc.lines[0]
    assert (first.line_id, first.name, first.contract_line_id) == ("1", "Work", "L1")
    assert [d.amount for d in first.details] == [Decimal("100.00"), Decimal("0.10")]


def test_line_taxes_can_be_a_sequence_aligned_with_the_lines():
    by_id = document_from_invoice(two_lines(), SELLER, BUYER, {"L1": S19, "L2": S7})
    aligned = document_from_invoice(two_lines(), SELLER, BUYER, [S19, S7])
    assert by_id == aligned


def test_a_draft_is_a_proforma_under_its_invoice_id():
    doc = document_from_invoice(two_lines(status=Status.DRAFT), SELLER, BUYER, [S19, S7])
    assert doc.draft and doc.number == doc.invoice_id and doc.type_code == "325"


def test_a_credit_note_turns_the_stored_negative_figures_positive():
    original = two_lines()
    stored = credit_note(original)
    assert stored.amount == Decimal("-150.10")
    credited = CreditedInvoice(original.invoice_id, "INV-000042", original.invoice_date)
    doc = document_from_invoice(stored, SELLER, BUYER, [S19, S7], credited=credited)
    assert doc.document_type is DocumentType.CREDIT_NOTE and doc.type_code == "381"
    assert doc.number == "CRN-000007" and doc.credited == credited
    assert doc.tax.net == Decimal("150.10") and doc.tax.gross == Decimal("172.62")
    assert all(li.net_amount > 0 for li in doc.lines)
    assert all(d.amount > 0 for li in doc.lines for d in li.details)
    assert doc.due_date is None
    assert doc.payment_terms.startswith("Credit note for invoice INV-000042")


def test_cancelled_invoices_have_no_document():
    with pytest.raises(DocumentError, match="cancelled"):
        document_from_invoice(two_lines(status=Status.CANCELLED), SELLER, BUYER, [S19, S7])


def test_incomplete_parties_are_refused_with_every_problem():
    seller = Party("", country_code="")
    buyer = replace(BUYER, name="", country_code="XX")
    with pytest.raises(DocumentError) as raised:
        document_from_invoice(two_lines(), seller, buyer, [S19, S7])
    rules = " ".join(raised.value.problems)
    for rule in ("BR-06", "BR-09", "BR-CO-26", "BR-S-02", "BR-07", "BR-CL-14"):
        assert rule in rules, rule
    with pytest.raises(DocumentError, match="no seller is recorded"):
        document_from_invoice(two_lines(), None, BUYER, [S19, S7])


def test_a_line_without_tax_or_with_a_disallowed_rate_is_refused():
    with pytest.raises(DocumentError, match=r"line 2 \(contract line L2\) has no tax"):
        document_from_invoice(two_lines(), SELLER, BUYER, {"L1": S19})
    with pytest.raises(DocumentError, match="2 line taxes given for the 1 lines"):
        document_from_invoice(invoice("EUR", [line(1, "Work", "1.00")]), SELLER, BUYER, [S19, S7])
    wrong = LineTax(TaxCategory.EXEMPT, Decimal("20"))
    with pytest.raises(DocumentError, match="has a tax percent of 0, not 20"):
        document_from_invoice(two_lines(), SELLER, BUYER, [S19, wrong])


def test_an_invoice_without_lines_is_refused():
    empty = invoice("EUR", [])
    with pytest.raises(DocumentError, match="has no lines"):
        document_from_invoice(empty, SELLER, BUYER, [])


def test_the_sign_of_every_line_is_checked():
    with pytest.raises(DocumentError, match="line 1 of credit note"):
        document(two_lines(), taxes(("S", "19"), ("S", "7")), credited=two_lines())
    with pytest.raises(DocumentError, match="line 1 of invoice"):
        document(credit_note(two_lines()), taxes(("S", "19"), ("S", "7")))


def test_amount_formatting():
    assert format_amount(Decimal("1234567.5"), "EUR") == "1,234,567.50"
    assert format_amount(Decimal("-0.5"), "USD") == "-0.50"
    assert format_amount(Decimal("1234.5"), "JPY") == "1,235"
    assert format_amount(Decimal("1234.5"), "KWD") == "1,234.500"


def test_xml_text_drops_what_xml_cannot_hold():
    assert xml_text("a\x00b\x1fc\td\ne\r") == "a b c\td\ne\r"
    assert xml_text("\ud800x\uffff") == " x "


# ---- records that carry the corrections' fields (R21, R22) ---------------------------------
# Built as plain attribute records so the test reads the same whatever model.py holds.


def with_fields(record, **fields):
    return SimpleNamespace(**{**record._asdict(), **fields})


def test_removed_and_written_off_details_are_not_billed():
    draft = two_lines(status=Status.DRAFT)
    first, second = draft.lines
    kept, removed = first.details
    first = first._replace(
        amount=kept.amount,
        details=(with_fields(kept, status="Invoiced"), with_fields(removed, status="Removed")),
    )
    second = second._replace(
        amount=Decimal(0),
        details=tuple(with_fields(d, status="WrittenOff") for d in second.details),
    )
    doc = document_from_invoice(draft._replace(lines=(first, second)), SELLER, BUYER, [S19, S7])
    assert [li.line_id for li in doc.lines] == ["1"]  # the emptied line is left out
    assert [d.source_id for d in doc.lines[0].details] == [kept.source_id]
    assert doc.tax.net == Decimal("100.00")


def test_a_credit_note_record_names_the_invoice_it_credits(validator):
    stored = credit_note(two_lines())
    record = with_fields(
        stored,
        is_credit_note=True,
        credited_invoice_id="INV-20201005-0123456789",
        credited_number="INV-000042",
    )
    doc = document_from_invoice(record, SELLER, BUYER, [S19, S7])
    assert doc.type_code == "381"
    assert doc.credited == CreditedInvoice("INV-20201005-0123456789", "INV-000042")
    assert doc.tax.gross == Decimal("172.62")
    assert validator.check_cii(build_cii(doc)) == []  # BT-26, the credited invoice's date, unknown
    assert validator.check_ubl(build_ubl(doc)) == []
