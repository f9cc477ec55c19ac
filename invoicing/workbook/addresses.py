"""The parties' data in the input (E1, W11): the customers' address columns and the Seller sheet.

Street, City and PostalCode are free text (trimmed); CountryCode is an ISO 3166 alpha-2 code
(any case, kept in capitals); VatId a country prefix and 2 to 13 letters or digits (BR-CO-09,
kept in capitals); Email a plausible address (one ``@``, a dot in the domain, no spaces).
"""

from __future__ import annotations

import re

from invoicing import parties
from invoicing.model import Party
from invoicing.workbook._cells import Bad, to_stored_text
from invoicing.workbook.columns import SELLER
from invoicing.workbook.drafts import ContractDraft, Reading
from invoicing.workbook.loading import SheetTable

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def to_plain_text(value: object, column: str) -> str:
    """Address text the store keeps, trimmed."""
    return to_stored_text(value).strip()


def to_country(value: object, column: str) -> str:
    code = to_stored_text(value).strip().upper()
    if not parties.is_country_code(code):
        raise Bad(f'{column} "{code}" is not an ISO 3166 two-letter country code (DE, FR, GB …)')
    return code


def to_vat_id(value: object, column: str) -> str:
    vat_id = to_stored_text(value).strip().upper()
    why = parties.vat_id_problem(vat_id)
    if why is not None:
        raise Bad(f'{column} "{vat_id}": {why}')
    return vat_id


def to_iban(value: object, column: str) -> str:
    """An IBAN (ISO 13616), spaces allowed and dropped: country code, two check digits that
    pass mod 97, at most 34 letters and digits. A typo here would send every customer's
    payment astray, so it is checked, not trusted."""
    iban = "".join(to_stored_text(value).split()).upper()
    if not (15 <= len(iban) <= 34 and iban.isascii() and iban.isalnum()):
        raise Bad(f'{column} "{iban}" is not an IBAN (15 to 34 letters and digits)')
    if not (parties.is_country_code(iban[:2]) and iban[2:4].isdigit()):
        raise Bad(f'{column} "{iban}" does not start with a country code and two check digits')
    number = int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4]))
    if number % 97 != 1:
        raise Bad(f'{column} "{iban}": its check digits are wrong (a typo?)')
    return iban


def to_email(value: object, column: str) -> str:
    email = to_stored_text(value).strip()
    if not _EMAIL.fullmatch(email):
        raise Bad(f'{column} "{email}" is not an e-mail address such as name@example.com')
    return email


# column -> (Party/Customer field, converter)
ADDRESS_COLUMNS = {
    "Street": ("street", to_plain_text),
    "City": ("city", to_plain_text),
    "PostalCode": ("postal_code", to_plain_text),
    "CountryCode": ("country_code", to_country),
    "VatId": ("vat_id", to_vat_id),
    "Email": ("email", to_email),
}


def read_address(r: Reading, table: SheetTable, cells: list[object], row: int) -> dict[str, str]:
    """The address columns of a Customers or Seller row, checked: field -> value (given ones)."""
    address: dict[str, str] = {}
    for column, (field, convert) in ADDRESS_COLUMNS.items():
        value = r.convert(table, cells, row, column, convert, column)
        if isinstance(value, str) and value:
            address[field] = value
    return address


_FIELD_COLUMNS = {field: column for column, (field, _) in ADDRESS_COLUMNS.items()}
_FIELD_COLUMNS["name"] = "CustomerName"  # one customer has one name on all its rows too


def merge_address(
    r: Reading,
    table: SheetTable,
    row: int,
    contract: ContractDraft,
    kid: str,
    address: dict[str, str],
) -> None:
    """One customer on several rows of a contract (line-level splits) has one name and one
    address: a value given on two rows must agree; a blank takes the other rows' value."""
    known = contract.addresses.setdefault(kid, {})
    for field, value in address.items():
        first = known.get(field)
        if first is None:
            known[field] = (value, row)
        elif first[0] != value:
            column = _FIELD_COLUMNS[field]
            r.problem(
                table,
                column,
                row,
                f'{column} "{value}" of customer "{kid}" differs from "{first[0]}" in row '
                f"{first[1]}; give it once, or the same on every row",
            )


def read_seller(r: Reading) -> None:
    """The optional Seller sheet (W11): one row; Name and CountryCode required."""
    table = r.tables.get(SELLER)
    if table is None:
        return
    for row, cells in r.rows(SELLER):
        if r.seller_row:
            r.problem(
                table,
                "Name",
                row,
                f"the Seller sheet has one row (the seller is in row {r.seller_row}); "
                "remove this one",
            )
            continue
        r.seller_row = row
        before = len(r.found)
        name = r.convert(table, cells, row, "Name", to_plain_text, "Name")
        address = read_address(r, table, cells, row)
        iban = r.convert(table, cells, row, "Iban", to_iban, "Iban")
        r.required(table, row, "Name", name or None)
        country = r.cell(table, cells, "CountryCode")
        if country == "" or (type(country) is str and country.isspace()):
            r.problem(table, "CountryCode", row, "CountryCode is required")
        if len(r.found) == before:
            r.seller = Party(
                name=name,  # type: ignore[arg-type]
                iban=iban if isinstance(iban, str) else "",
                **address,
            )
