"""E3 from the store: `document` writes the PDF, CII and UBL of a stored invoice or credit note,
valid under EN 16931, equal to the stored figures, and refuses incomplete party data (exit 2)."""

from __future__ import annotations

import dataclasses
import io

import facturx
import pypdf
import pytest

from invoicing import services
from invoicing.cli import main
from invoicing.documents.validate import Validator
from tests.storage.documents_setup import SELLER, stored_invoice


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def document(invoice_id: str, fmt: str, tmp_path) -> bytes:
    out = tmp_path / f"{invoice_id}.{fmt}"
    assert main(["document", invoice_id, "--format", fmt, "-o", str(out)]) == 0
    return out.read_bytes()


def test_a_confirmed_invoice_gets_a_valid_pdf_cii_and_ubl(cli_env, store, tmp_path, validator):
    invoice_id = stored_invoice(store, cli_env)
    assert main(["confirm", invoice_id]) == 0
    number = services.get_invoice(store, invoice_id).invoice_number
    pdf = document(invoice_id, "pdf", tmp_path)
    text = pdf_text(pdf)
    parties = (SELLER.name, "Customer", "FR32123456789", "DE123456789")
    for expected in (number, *parties, "30.03", "6.01"):
        assert expected in text, expected
    assert "36.04" in text  # gross: 30.03 + 6.01 (20 % of the group, rounded once)
    cii = document(invoice_id, "cii", tmp_path)
    assert validator.check_cii(cii) == []
    _, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert embedded == cii
    assert document(invoice_id, "xml", tmp_path) == cii  # xml is the SPEC's name for the CII
    assert validator.check_ubl(document(invoice_id, "ubl", tmp_path)) == []


def test_a_credit_note_is_a_valid_381_referencing_its_invoice(cli_env, store, tmp_path, validator):
    invoice_id = stored_invoice(store, cli_env)
    services.confirm(store, cli_env, invoice_id)
    note = services.credit(store, cli_env, invoice_id)
    cii = document(note.invoice_id, "cii", tmp_path)
    assert validator.check_cii(cii) == []
    credited_number = services.get_invoice(store, invoice_id).invoice_number
    assert b">381<" in cii and credited_number.encode() in cii
    assert validator.check_ubl(document(note.invoice_id, "ubl", tmp_path)) == []


def test_a_draft_pdf_says_proforma_with_its_invoice_id(cli_env, store, tmp_path):
    invoice_id = stored_invoice(store, cli_env)
    text = pdf_text(document(invoice_id, "pdf", tmp_path))
    assert "PROFORMA" in text and invoice_id in text


def test_missing_party_data_exits_2_listing_everything_missing(cli_env, store, tmp_path, capsys):
    invoice_id = stored_invoice(store, cli_env, seller=None, address=False)
    out = tmp_path / "none.pdf"
    assert main(["document", invoice_id, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "seller" in err.lower() and "buyer" in err.lower(), err
    assert not out.exists()


def test_a_bad_format_exits_2(cli_env, store, tmp_path, capsys):
    invoice_id = stored_invoice(store, cli_env)
    assert main(["document", invoice_id, "--format", "docx", "-o", str(tmp_path / "x")]) == 2
    assert 'is not one of pdf, xml, cii, ubl' in capsys.readouterr().err


def test_documents_writes_one_file_per_invoice_and_names_the_refused(cli_env, store, tmp_path):
    invoice_id = stored_invoice(store, cli_env)
    services.confirm(store, cli_env, invoice_id)
    folder = tmp_path / "docs"
    assert main(["documents", "--format", "ubl", "-o", str(folder)]) == 0
    number = services.get_invoice(store, invoice_id).invoice_number
    assert [p.name for p in folder.iterdir()] == [f"{number}.ubl.xml"]


def test_the_last_of_several_partial_credits_states_the_rest_of_the_tax_and_validates(
    cli_env, store, tmp_path, validator
):
    invoice_id = stored_invoice(store, cli_env)  # 3 x 10.01 at 20 %: tax 6.01
    services.confirm(store, cli_env, invoice_id)
    notes = [services.credit(store, cli_env, invoice_id, items=[t]) for t in ("T1", "T2", "T3")]
    last = document(notes[-1].invoice_id, "cii", tmp_path)
    assert b">2.01<" in last  # 6.01 - 2.00 - 2.00, one cent over its own rounding (2.002)
    assert validator.check_cii(last) == []
    assert validator.check_ubl(document(notes[-1].invoice_id, "ubl", tmp_path)) == []


def test_a_confirmed_invoice_keeps_the_parties_it_was_issued_to(cli_env, store, tmp_path):
    issued = stored_invoice(store, cli_env)
    services.confirm(store, cli_env, issued)
    moved = dataclasses.replace(SELLER, name="New Owner Ltd", vat_id="FR99999999999")
    stored_invoice(store, cli_env, seller=moved, address=False)  # a later upload, no address
    text = pdf_text(document(issued, "pdf", tmp_path))
    assert SELLER.name in text and "New Owner" not in text and "DE123456789" in text
    note = services.credit(store, cli_env, issued)
    assert SELLER.name in pdf_text(document(note.invoice_id, "pdf", tmp_path))
