"""E3 acceptance 1 on random portfolios: every invoice and credit note the engine plans for a
random workbook (several currencies, split customers, random VAT categories and rates) makes a
CII and a UBL document that pass the official XSDs and the EN 16931 schematron, or is refused
for the one documented reason (a KWD amount with a third decimal, which EN 16931 cannot state)."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import pytest

from invoicing import engine
from invoicing.documents.cii import build_cii
from invoicing.documents.document import DocumentError
from invoicing.documents.ubl import build_ubl
from invoicing.model import Contract, Customer, Invoice, Portfolio, Status, TaxCategory
from invoicing.tax import LineTax
from invoicing.workbook.reader import read_workbook
from tests.documents.builders import credit_note, document
from tests.storage.portfolios import END, START, random_book, workbook

# (category, percent) a line may carry; O (not subject) stands alone, so it is a whole contract's
RATES = [("S", "20"), ("S", "5.5"), ("S", "7"), ("Z", "0"), ("E", "0"), ("AE", "0"), ("G", "0")]
BUYERS = [
    ("Rue de Rivoli 1", "Paris", "75001", "FR", "FR40303265045"),
    ("Herengracht 2", "Amsterdam", "1015 BK", "NL", "NL123456789B01"),
    ("Via Roma 3", "Milano", "20121", "IT", "IT12345678901"),
]
PER_SEED = 12  # documents validated per seed: each document takes the validators ~0.1 s


def taxed(portfolio: Portfolio, rnd: random.Random) -> Portfolio:
    def customer(c: Customer) -> Customer:
        street, city, postal, country, vat = rnd.choice(BUYERS)
        return dataclasses.replace(
            c, street=street, city=city, postal_code=postal, country_code=country, vat_id=vat
        )

    def contract(c: Contract) -> Contract:
        alone = rnd.random() < 0.15
        lines = []
        for line in c.lines:
            category, percent = ("O", "0") if alone else rnd.choice(RATES)
            lines.append(
                dataclasses.replace(
                    line,
                    tax_category=TaxCategory(category),
                    tax_percent=Decimal(percent),
                    customers=tuple(customer(x) for x in line.customers),
                )
            )
        return dataclasses.replace(
            c, lines=tuple(lines), customers=tuple(customer(x) for x in c.customers)
        )

    return dataclasses.replace(portfolio, contracts=tuple(contract(c) for c in portfolio.contracts))


def buyer_of(portfolio: Portfolio, invoice: Invoice):
    contract = portfolio.contract(invoice.contract_id)
    assert contract is not None
    everyone = [*contract.customers, *(c for li in contract.lines for c in li.customers)]
    return next(c for c in everyone if c.customer_id == invoice.customer_id).party()


def third_decimal(invoice: Invoice) -> bool:
    amounts = [d.amount for li in invoice.lines for d in li.details] + [invoice.amount]
    return any(a != a.quantize(Decimal("0.01")) for a in amounts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_planned_invoice_and_its_credit_note_validate(validator, seed):
    rnd = random.Random(seed)
    portfolio = taxed(read_workbook(workbook(random_book(seed))).portfolio, rnd)
    planned = engine.plan_range(portfolio, engine.date_range(START, END)).invoices
    billed = [i for i in planned if i.amount > 0]
    assert billed, "the random portfolio plans no invoice"
    checked = 0
    rnd.shuffle(billed)
    for n, draft in enumerate(billed):
        if checked >= PER_SEED:
            break
        confirmed = draft._replace(status=Status.CONFIRMED, invoice_number=f"INV-{n + 1:06d}")
        taxes = [LineTax(li.tax_category, li.tax_percent) for li in confirmed.lines]
        buyer = buyer_of(portfolio, confirmed)
        for kind, inv, credited in (
            ("invoice", confirmed, None),
            ("credit note", credit_note(confirmed, f"CRN-{n + 1:06d}"), confirmed),
        ):
            if any(t.category is TaxCategory.NOT_SUBJECT for t in taxes):
                # BR-O-02: a document not subject to VAT states no VAT id, and W11 has no
                # other seller identifier yet (BR-CO-26): refused, saying so
                with pytest.raises(DocumentError, match="BR-O-02"):
                    document(inv, taxes, buyer=buyer, credited=credited)
                continue
            if third_decimal(inv):
                with pytest.raises(DocumentError, match="decimal"):
                    build_cii(document(inv, taxes, buyer=buyer, credited=credited))
                continue
            doc = document(inv, taxes, buyer=buyer, credited=credited)
            assert validator.check_cii(build_cii(doc)) == [], (kind, inv.invoice_id)
            assert validator.check_ubl(build_ubl(doc)) == [], (kind, inv.invoice_id)
            checked += 1
    assert checked >= PER_SEED, f"only {checked} documents of this seed were checked"
