"""Parties and tax in the input workbook (SPEC E1, E2, W11): real .xlsx files from openpyxl."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from invoicing.errors import InputRejected
from invoicing.model import Party, TaxCategory
from invoicing.workbook.columns import INPUT_HEADERS
from invoicing.workbook.reader import WorkbookRead, read_workbook
from tests.support.workbooks import Book, add, minimal_rows, put, xlsx

SAMPLE = Path(__file__).resolve().parents[2] / "templates" / "sample-adatum.xlsx"
SELLER = list(INPUT_HEADERS["Seller"])


def read(book: Book) -> WorkbookRead:
    return read_workbook(xlsx(book))


def problems(book: Book) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read(book)
    return [str(p) for p in caught.value.problems]


def with_seller(*rows: list[object]) -> Book:
    book = minimal_rows()
    book["Seller"] = [SELLER, *rows]
    return book


def line(book: Book, line_id: str):
    (contract,) = read(book).portfolio.contracts
    return next(x for x in contract.lines if x.line_id == line_id)


# ---- Seller (W11) --------------------------------------------------------------------------------


def test_the_seller_row_is_read_with_its_country_in_capitals():
    book = with_seller(
        [
            "Northwind Ltd",
            "1 High St",
            "London",
            "EC1 1AA",
            "gb",
            "gb123456789",
            "a@b.example",
            "GB33BUKB20201555555555",
        ]
    )
    assert read(book).portfolio.seller == Party(
        name="Northwind Ltd",
        street="1 High St",
        city="London",
        postal_code="EC1 1AA",
        country_code="GB",
        vat_id="GB123456789",
        email="a@b.example",
        iban="GB33BUKB20201555555555",
    )


def test_no_seller_sheet_or_an_empty_one_means_no_seller():
    assert read(minimal_rows()).portfolio.seller is None
    assert read(with_seller()).portfolio.seller is None


def test_a_second_seller_row_is_an_error_at_that_row():
    book = with_seller(["A", None, None, None, "DE"], ["B", None, None, None, "FR"])
    assert problems(book) == [
        "Seller!A3: the Seller sheet has one row (the seller is in row 2); remove this one"
    ]


def test_seller_name_and_country_are_required():
    book = with_seller([None, "Street", None, None, None])
    assert problems(book) == ["Seller!A2: Name is required", "Seller!E2: CountryCode is required"]
    book = minimal_rows()
    book["Seller"] = [["Name", "City"], ["A", "Paris"]]
    assert problems(book) == ['Seller!A1: required column "CountryCode" is missing']


def test_seller_country_vat_id_and_email_are_checked():
    book = with_seller(["A", None, None, None, "XX", "DE 123", "not-an-email"])
    found = problems(book)
    assert (
        found[0]
        == 'Seller!E2: CountryCode "XX" is not an ISO 3166 two-letter country code (DE, FR, GB …)'
    )
    assert found[1].startswith('Seller!F2: VatId "DE 123": a VAT id')
    assert (
        found[2]
        == 'Seller!G2: Email "not-an-email" is not an e-mail address such as name@example.com'
    )
    assert len(found) == 3


# ---- customers' addresses (E1) -------------------------------------------------------------------


def test_customer_address_columns_reach_the_customer():
    book = minimal_rows()
    for name, value in (
        ("Street", "5 Rue X"),
        ("City", "Paris"),
        ("PostalCode", "75001"),
        ("CountryCode", "fr"),
        ("VatId", "FR12345678901"),
        ("Email", "ap@fabrikam.example"),
    ):
        put(book, "Customers", 2, name, value)
    (contract,) = read(book).portfolio.contracts
    k1 = contract.customers[0]
    assert (k1.street, k1.city, k1.postal_code, k1.country_code, k1.vat_id, k1.email) == (
        "5 Rue X",
        "Paris",
        "75001",
        "FR",
        "FR12345678901",
        "ap@fabrikam.example",
    )
    assert contract.customers[1].country_code == ""


def test_one_customer_on_several_rows_has_one_address_blank_takes_the_others_value():
    book = minimal_rows()
    put(book, "Customers", 2, "CountryCode", "DE")
    put(book, "Customers", 2, "City", "Berlin")
    add(
        book,
        "Customers",
        ContractId="C1",
        CustomerId="K1",
        SplitPercent=100,
        LineId="L3",
        City="Berlin",
    )
    (contract,) = read(book).portfolio.contracts
    l3 = next(x for x in contract.lines if x.line_id == "L3")
    assert l3.customers[0].country_code == "DE"  # blank on row 4: row 2's value
    assert l3.customers[0].city == "Berlin"


def test_conflicting_address_values_of_one_customer_name_the_cell():
    book = minimal_rows()
    put(book, "Customers", 2, "CountryCode", "DE")
    row = add(
        book,
        "Customers",
        ContractId="C1",
        CustomerId="K1",
        SplitPercent=100,
        LineId="L3",
        CountryCode="FR",
    )
    assert problems(book) == [
        f'Customers!J{row}: CountryCode "FR" of customer "K1" differs from "DE" in row 2; '
        "give it once, or the same on every row"
    ]


# ---- tax (E2) ------------------------------------------------------------------------------------


def test_a_line_without_tax_columns_takes_the_contracts_percent_and_s():
    book = minimal_rows()
    put(book, "Contracts", 2, "TaxPercent", 20)
    (contract,) = read(book).portfolio.contracts
    assert contract.tax_percent == Decimal(20)
    assert {(x.tax_category, x.tax_percent) for x in contract.lines} == {
        (TaxCategory.STANDARD, Decimal(20))
    }


def test_no_percent_anywhere_is_exempt_at_zero():
    l1 = line(minimal_rows(), "L1")
    assert (l1.tax_category, l1.tax_percent) == (TaxCategory.EXEMPT, Decimal(0))


def test_line_percent_and_category_win_over_the_contract():
    book = minimal_rows()
    put(book, "Contracts", 2, "TaxPercent", 20)
    put(book, "ContractLines", 2, "TaxPercent", 7.5)
    put(book, "ContractLines", 3, "TaxCategory", "z")
    put(book, "ContractLines", 4, "TaxPercent", 0)
    (contract,) = read(book).portfolio.contracts
    got = {x.line_id: (x.tax_category, x.tax_percent) for x in contract.lines}
    assert got == {
        "L1": (TaxCategory.STANDARD, Decimal("7.5")),
        "L2": (TaxCategory.ZERO, Decimal(0)),  # a zero-rated category with a blank percent
        "L3": (TaxCategory.EXEMPT, Decimal(0)),
    }


@pytest.mark.parametrize(
    ("sheet", "column", "value", "message"),
    [
        (
            "Contracts",
            "TaxPercent",
            120,
            "Contracts!E2: TaxPercent: tax percent 120 is not between 0 and 100",
        ),
        (
            "Contracts",
            "TaxPercent",
            -1,
            "Contracts!E2: TaxPercent: tax percent -1 is not between 0 and 100",
        ),
        (
            "ContractLines",
            "TaxPercent",
            19.555,
            "ContractLines!L2: TaxPercent: tax percent 19.555 has more than 2 decimals",
        ),
        (
            "ContractLines",
            "TaxPercent",
            "abc",
            'ContractLines!L2: TaxPercent "abc" is not a plain decimal number such as 1234.5',
        ),
        (
            "ContractLines",
            "TaxCategory",
            "X",
            'ContractLines!M2: TaxCategory: tax category "X" is not one of S, Z, E, AE, K, G, O',
        ),
        (
            "ContractLines",
            "TaxCategory",
            "S",
            "ContractLines!M2: TaxCategory: tax category S (standard rate) needs a tax percent "
            "above 0 (BR-S-05)",
        ),
    ],
)
def test_bad_tax_cells_are_errors_naming_the_cell(sheet, column, value, message):
    book = minimal_rows()
    put(book, sheet, 2, column, value)
    assert problems(book) == [message]


def test_an_exempt_line_with_a_rate_is_an_error():
    book = minimal_rows()
    put(book, "ContractLines", 2, "TaxPercent", 10)
    put(book, "ContractLines", 2, "TaxCategory", "E")
    (message,) = problems(book)
    assert message.startswith("ContractLines!M2: TaxCategory: tax category E")


# ---- the Adatum sample ---------------------------------------------------------------------------


def test_the_adatum_sample_has_a_seller_an_address_and_a_rate():
    portfolio = read_workbook(SAMPLE.read_bytes()).portfolio
    assert portfolio.seller is not None and portfolio.seller.country_code == "GB"
    (contract,) = portfolio.contracts
    assert contract.customers[0].vat_id == "GB987654321"
    assert {(x.tax_category, x.tax_percent) for x in contract.lines} == {
        (TaxCategory.STANDARD, Decimal(20))
    }


# ---- review fixes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iban", "message"),
    [
        ("GB34BUKB20201555555555", "check digits are wrong"),
        ("GB33 BUKB", "15 to 34 letters and digits"),
        ("ZZ33BUKB20201555555555", "country code and two check digits"),
    ],
)
def test_a_seller_iban_with_a_typo_is_an_error_at_its_cell(iban, message):
    book = with_seller(["Northwind Ltd", None, None, None, "GB", None, None, iban])
    (problem,) = problems(book)
    assert problem.startswith("Seller!H2:") and message in problem


def test_a_seller_iban_is_kept_without_its_spaces():
    spaced = "gb33 bukb 2020 1555 5555 55"
    book = with_seller(["Northwind Ltd", None, None, None, "GB", None, None, spaced])
    assert read(book).portfolio.seller.iban == "GB33BUKB20201555555555"


def test_one_customer_with_two_names_on_its_rows_is_an_error_naming_the_cell():
    book = minimal_rows()
    put(book, "Customers", 2, "CustomerName", "Name B")
    row = add(
        book,
        "Customers",
        ContractId="C1",
        CustomerId="K1",
        CustomerName="Name C",
        SplitPercent=100,
        LineId="L3",
    )
    assert problems(book) == [
        f'Customers!C{row}: CustomerName "Name C" of customer "K1" differs from "Name B" in row '
        "2; give it once, or the same on every row"
    ]


def test_category_o_is_read_with_a_warning_that_its_documents_are_limited():
    book = minimal_rows()
    put(book, "ContractLines", 2, "TaxCategory", "O")
    result = read(book)
    assert any("category O" in w and "BR-O-02" in w for w in result.warnings), result.warnings
