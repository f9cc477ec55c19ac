"""E2 and X5 on planned and stored invoices: each line carries its contract line's VAT, an
invoice's tax is per (category, percent) group rounded once, and the store keeps all of it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from invoicing.model import Customer, TaxCategory
from invoicing.storage import codec
from invoicing.tax import invoice_tax
from tests.core.builders import contract, customer, fp_line, milestone, tm_line, txn
from tests.core.test_engine import run


def taxed(line, category: TaxCategory, percent: str):
    return dataclasses.replace(line, tax_category=category, tax_percent=Decimal(percent))


def three_thirds():
    """The classic case: three lines of 10.01 at 20 %, 2.002 of tax each."""
    lines = [taxed(tm_line(f"L{n}", "2020-10-05"), TaxCategory.STANDARD, "20") for n in (1, 2, 3)]
    items = tuple(txn(f"T{n}", "2020-10-01", "10.01", line_id=f"L{n}") for n in (1, 2, 3))
    return contract(*lines, transactions=items)


def test_planned_lines_carry_their_contract_lines_tax():
    c = contract(
        taxed(tm_line("TM", "2020-10-05"), TaxCategory.STANDARD, "19"),
        taxed(fp_line("FP"), TaxCategory.REVERSE_CHARGE, "0"),
        transactions=(txn("T1", "2020-10-01", "100.00"),),
        milestones=(milestone("M1", "2020-10-05", "50.00"),),
    )
    (invoice,) = run(c, "2020-10-05").invoices
    assert {(li.contract_line_id, li.tax_category, li.tax_percent) for li in invoice.lines} == {
        ("TM", TaxCategory.STANDARD, Decimal("19")),
        ("FP", TaxCategory.REVERSE_CHARGE, Decimal("0")),
    }
    tax = invoice_tax(invoice)
    assert (tax.net, tax.tax, tax.gross) == (Decimal("150.00"), Decimal("19.00"), Decimal("169.00"))


def test_tax_is_rounded_once_per_group_not_per_line():
    (invoice,) = run(three_thirds(), "2020-10-05").invoices
    # per line: 2.002 -> 2.00, three times 6.00; per group: 30.03 x 20 % = 6.006 -> 6.01
    assert invoice_tax(invoice).tax == Decimal("6.01")


def test_store_keeps_line_tax_and_header_totals():
    (invoice,) = run(three_thirds(), "2020-10-05").invoices
    header = codec.header_entity("pk", invoice, "Draft")
    assert (header["TaxAmount"], header["GrossAmount"]) == ("6.01", "36.04")
    back = codec.invoice_from(
        header, codec.line_entities("pk", invoice), codec.detail_entities("pk", invoice)
    )
    assert back == invoice


def test_configuration_round_trips_customer_address_and_line_tax():
    buyer = Customer(
        "ADATUM",
        "Adatum",
        Decimal("100"),
        street="1 Main St",
        city="Lyon",
        postal_code="69001",
        country_code="FR",
        vat_id="FR12345678901",
        email="ap@adatum.example",
    )
    c = dataclasses.replace(
        contract(
            taxed(tm_line("TM", "2020-10-05"), TaxCategory.STANDARD, "20"),
            customers=(buyer, customer("OTHER", "0")),
        ),
        tax_percent=Decimal("20"),
    )
    entities = codec.config_entities("pk", c, 0)
    assert codec.contract_from_entities(entities[0]) == c
    assert c.customers[0].party().country_code == "FR"


def test_configuration_stored_before_tax_reads_as_exempt_at_zero():
    c = contract(tm_line("TM", "2020-10-05"))
    entities = codec.config_entities("pk", c, 0)
    text = entities[0]["P0"].replace(',"tax":["E","0"]', "")
    old = codec.contract_from_entities({**entities[0], "P0": text})
    assert old.lines[0].tax_category is TaxCategory.EXEMPT
    assert old.lines[0].tax_percent == Decimal(0)
    assert old == c
