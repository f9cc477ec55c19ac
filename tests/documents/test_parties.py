"""What EN 16931 requires of the seller and the buyer (E1, E3: refused with the list)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from invoicing.parties import (
    ISO_COUNTRY_CODES,
    Party,
    is_country_code,
    missing_fields,
    vat_id_problem,
)
from tests.documents.builders import BUYER, SELLER


def test_complete_parties_miss_nothing():
    assert missing_fields(SELLER, BUYER) == []
    assert missing_fields(SELLER, BUYER, ["S", "Z", "E", "AE", "K", "G"]) == []


def test_parties_are_immutable():
    with pytest.raises(FrozenInstanceError):
        SELLER.name = "x"  # type: ignore[misc]


def test_every_problem_is_listed_at_once():
    problems = missing_fields(Party(name=" "), Party(name=""), ["S"])
    joined = "\n".join(problems)
    for rule in ("BR-06", "BR-07", "BR-09", "BR-11", "BR-CO-26", "BR-S-02"):
        assert rule in joined, rule
    assert [p.split(":")[0] for p in problems] == [
        "Seller",
        "Seller",
        "Seller",
        "Seller",
        "Buyer",
        "Buyer",
    ]


def test_no_seller_or_buyer_at_all():
    problems = missing_fields(None, None)
    assert problems == [
        "Seller: no seller is recorded (the Seller sheet, W11)",
        "Buyer: no buyer is recorded",
    ]


def test_country_codes_are_iso_3166_alpha_2():
    assert len(ISO_COUNTRY_CODES) == 249
    assert is_country_code("DE") and is_country_code("GB") and not is_country_code("UK")
    assert not is_country_code("de") and not is_country_code("DEU")
    (problem,) = missing_fields(SELLER, replace(BUYER, country_code="UK"))
    assert problem == 'Buyer: country code "UK" is not ISO 3166-1 alpha-2 (BR-CL-14)'


def test_vat_ids_carry_their_country_prefix():
    assert vat_id_problem("DE123456789") is None
    assert vat_id_problem("EL123456789") is None  # Greece
    assert vat_id_problem("XI123456789") is None  # Northern Ireland
    assert 'not "12"' in (vat_id_problem("123456789") or "")
    assert "no spaces" in (vat_id_problem("DE 123 456") or "")
    assert vat_id_problem("DE1") is not None
    (problem,) = missing_fields(replace(SELLER, vat_id="123456789"), BUYER)
    assert problem.startswith('Seller: VAT id "123456789"') and "BR-CO-09" in problem


def test_a_seller_without_vat_id_needs_a_legal_id_and_cannot_charge_vat():
    no_vat = replace(SELLER, vat_id="")
    assert any("BR-CO-26" in p for p in missing_fields(no_vat, BUYER))
    problems = missing_fields(replace(no_vat, legal_id="HRB 12345"), BUYER, ["S", "E"])
    assert problems == [
        "Seller: VAT id (BT-31) is required for the VAT categories used (BR-S-02, BR-E-02)"
    ]


def test_reverse_charge_and_intra_community_need_the_buyer_vat_id():
    buyer = replace(BUYER, vat_id="")
    assert missing_fields(SELLER, buyer, ["S"]) == []
    (ae,) = missing_fields(SELLER, buyer, ["AE"])
    assert "BR-AE-02" in ae
    assert missing_fields(SELLER, replace(buyer, legal_id="552 100 554"), ["AE"]) == []
    (k,) = missing_fields(SELLER, replace(buyer, legal_id="552 100 554"), ["K"])
    assert "BR-IC-02" in k


def test_not_subject_to_vat_forbids_vat_ids():
    problems = missing_fields(SELLER, BUYER, ["O"])
    assert len(problems) == 2 and all("BR-O-02" in p for p in problems)
    seller = replace(SELLER, vat_id="", legal_id="HRB 12345")
    assert missing_fields(seller, replace(BUYER, vat_id=""), ["O"]) == []
