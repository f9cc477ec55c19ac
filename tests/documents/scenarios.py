"""The documents the validator, PDF and batch tests share: per currency, an invoice with two tax
groups, one with categories S, Z, E and AE, and a credit note of the latter."""

from __future__ import annotations

from invoicing.documents.document import Document
from invoicing.model import Invoice, Status
from invoicing.tax import LineTax
from tests.documents.builders import credit_note, document, invoice, line, taxes

# Per currency: the amounts of four lines and the two standard rates used. KWD amounts keep
# their third decimal at 0 so that EN 16931 (two decimals at most, BR-DEC) can state them.
AMOUNTS = {
    "EUR": (("1200.00", "0.33", "0.33", "0.33"), ("333.33",), ("49.99",), ("250.00",), "19", "7"),
    "USD": (("1000.00", "12.34"), ("99.99", "0.01"), ("10.50",), ("1.00",), "8.25", "5.5"),
    "JPY": (("120000", "3333"), ("33333",), ("4999",), ("25000",), "10", "8"),
    "KWD": (("1200.500", "0.100"), ("340.000",), ("12.000",), ("25.250",), "10", "5"),
}
CURRENCIES = sorted(AMOUNTS)


def two_groups(currency: str, status: Status = Status.CONFIRMED) -> Document:
    a, b, _, _, high, low = AMOUNTS[currency]
    inv = invoice(
        currency,
        [line(1, "Implementation work", *a), line(2, "Prototype milestone", *b, milestone=True)],
        status=status,
    )
    return document(inv, taxes(("S", high), ("S", low)))


def categories(currency: str) -> tuple[Invoice, list[LineTax]]:
    a, b, c, d, high, _ = AMOUNTS[currency]
    inv = invoice(
        currency,
        [
            line(1, "Consulting", *a),
            line(2, "Books", *b),
            line(3, "Training", *c),
            line(4, "Subcontracted work", *d),
        ],
    )
    return inv, taxes(("S", high), ("Z", "0"), ("E", "0"), ("AE", "0"))


def with_categories(currency: str) -> Document:
    inv, line_taxes = categories(currency)
    return document(inv, line_taxes)


def credit_of_categories(currency: str) -> Document:
    inv, line_taxes = categories(currency)
    return document(credit_note(inv), line_taxes, credited=inv)
