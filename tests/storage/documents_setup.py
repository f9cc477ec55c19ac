"""A stored, taxed contract with a seller and a buyer address, for the document tests (E3)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from invoicing import services
from invoicing.model import Party, TaxCategory
from invoicing.settings import Settings
from invoicing.storage.store import Store
from invoicing.workbook.reader import read_workbook
from tests.storage.portfolios import workbook
from tests.storage.test_corrections import D, drafts, weekly_book

SELLER = Party(
    "Fabrikam SARL",
    street="12 Rue de la Paix",
    city="Paris",
    postal_code="75002",
    country_code="FR",
    vat_id="FR32123456789",
    email="billing@fabrikam.example",
    iban="FR7630006000011234567890189",
)
BUYER = {
    "street": "Kaiserstrasse 1",
    "city": "Frankfurt",
    "postal_code": "60311",
    "country_code": "DE",
    "vat_id": "DE123456789",
}


def stored_invoice(
    store: Store, settings: Settings, *, seller: Party | None = SELLER, address: bool = True
) -> str:
    """Import one weekly contract (three transactions of 10.01 at 20 %), run 2020-10-05 and
    return the draft's id."""
    portfolio = read_workbook(
        workbook(weekly_book({"T1": "10.01", "T2": "10.01", "T3": "10.01"})), settings=settings
    ).portfolio
    (contract,) = portfolio.contracts
    line = dataclasses.replace(
        contract.lines[0], tax_category=TaxCategory.STANDARD, tax_percent=Decimal("20")
    )
    address_fields = BUYER if address else {}
    customers = tuple(dataclasses.replace(c, **address_fields) for c in contract.customers)
    contract = dataclasses.replace(contract, lines=(line,), customers=customers)
    services.import_portfolio(
        store, dataclasses.replace(portfolio, contracts=(contract,), seller=seller), settings
    )
    services.run_daily(store, settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    return draft.invoice_id
