"""E1/W11: the seller is stored by import, the latest upload with a Seller sheet winning."""

from __future__ import annotations

import dataclasses

from invoicing import services
from invoicing.model import Party
from invoicing.workbook.reader import read_workbook
from tests.storage.portfolios import workbook
from tests.support.workbooks import minimal_rows

FABRIKAM = Party("Fabrikam Ltd", city="Paris", country_code="FR", vat_id="FR12345678901")


def portfolio(seller: Party | None, settings):
    read = read_workbook(workbook(minimal_rows()), settings=settings)
    return dataclasses.replace(read.portfolio, seller=seller)


def imported(store, settings, seller: Party | None):
    return services.import_portfolio(store, portfolio(seller, settings), settings)


def seller_counts(result) -> dict[str, int] | None:
    return result.as_dict()["sheets"].get("Seller")


def test_latest_seller_wins_and_an_upload_without_one_keeps_it(store, storage_settings):
    first = imported(store, storage_settings, FABRIKAM)
    assert seller_counts(first) == {"created": 1, "updated": 0, "unchanged": 0, "removed": 0}
    assert store.seller() == FABRIKAM
    again = imported(store, storage_settings, FABRIKAM)
    assert seller_counts(again) == {"created": 0, "updated": 0, "unchanged": 1, "removed": 0}
    moved = dataclasses.replace(FABRIKAM, street="2 Rue Neuve", iban="FR7630006000011234567890189")
    changed = imported(store, storage_settings, moved)
    assert seller_counts(changed) == {"created": 0, "updated": 1, "unchanged": 0, "removed": 0}
    without = imported(store, storage_settings, None)
    assert seller_counts(without) is None
    assert store.seller() == moved


def test_store_without_a_seller_says_none(store):
    assert store.seller() is None
