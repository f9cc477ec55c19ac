"""E2 through the store: drafts, adjusted drafts and credit notes keep their tax totals equal to
their lines' (per group, rounded once), and audit names a header whose tax does not add up."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from invoicing import services
from invoicing.model import TaxCategory
from invoicing.workbook.reader import read_workbook
from tests.storage.portfolios import workbook
from tests.storage.test_corrections import D, drafts, weekly_book


def taxed_import(store, settings, amounts: dict[str, str], percent: str = "20") -> None:
    portfolio = read_workbook(workbook(weekly_book(amounts)), settings=settings).portfolio
    contracts = tuple(
        dataclasses.replace(
            c,
            lines=tuple(
                dataclasses.replace(
                    li, tax_category=TaxCategory.STANDARD, tax_percent=Decimal(percent)
                )
                for li in c.lines
            ),
        )
        for c in portfolio.contracts
    )
    services.import_portfolio(store, dataclasses.replace(portfolio, contracts=contracts), settings)


def header(store, invoice_id: str) -> dict:
    entity, _, _ = store.invoice_entities("C0", invoice_id)
    return entity


def test_a_draft_its_adjustment_and_its_credit_note_carry_their_tax(store, storage_settings):
    taxed_import(store, storage_settings, {"T1": "10.01", "T2": "10.01", "T3": "10.01"})
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    assert {(li.tax_category, li.tax_percent) for li in draft.lines} == {
        (TaxCategory.STANDARD, Decimal("20"))
    }
    first = header(store, draft.invoice_id)
    assert (first["TaxAmount"], first["GrossAmount"]) == ("6.01", "36.04")  # 6.006 rounded once
    services.adjust(store, storage_settings, draft.invoice_id, remove=["T1"])
    adjusted = header(store, draft.invoice_id)
    assert (adjusted["Amount"], adjusted["TaxAmount"], adjusted["GrossAmount"]) == (
        "20.02", "4.00", "24.02"
    )
    confirmed = services.confirm(store, storage_settings, draft.invoice_id)
    note = services.credit(store, storage_settings, confirmed.invoice_id)
    credit = header(store, note.invoice_id)
    assert (credit["Amount"], credit["TaxAmount"], credit["GrossAmount"]) == (
        "-20.02", "-4.00", "-24.02"
    )
    assert services.audit(store, storage_settings) == []


def test_audit_names_a_header_whose_tax_is_not_its_lines(store, storage_settings):
    taxed_import(store, storage_settings, {"T1": "100.00"})
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    entity = header(store, draft.invoice_id)
    assert entity["TaxAmount"] == "20.00"
    tampered = {k: v for k, v in entity.items() if not k.startswith("_")}
    tampered["TaxAmount"] = "19.99"
    store.upsert(store.table, tampered)
    problems = services.audit(store, storage_settings)
    assert [p for p in problems if "(E2)" in p] == [
        f"invoice {draft.invoice_id} (C0): tax 19.99 and gross 120.00 stored, its lines give "
        "20.00 and 120.00 (E2)"
    ], problems


def test_credits_in_parts_give_back_exactly_the_invoices_tax(store, storage_settings):
    # 10.05 + 10.05 at 10 %: the invoice's tax is 2.01 (20.10 x 10 %, rounded once), while
    # each half rounded alone is 1.01 (1.005): two such credits would give back 2.02
    taxed_import(store, storage_settings, {"T1": "10.05", "T2": "10.05"}, percent="10")
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    confirmed = services.confirm(store, storage_settings, draft.invoice_id)
    assert header(store, confirmed.invoice_id)["TaxAmount"] == "2.01"
    first = services.credit(store, storage_settings, confirmed.invoice_id, items=["T1"])
    second = services.credit(store, storage_settings, confirmed.invoice_id, items=["T2"])
    taxes = [header(store, n.invoice_id)["TaxAmount"] for n in (first, second)]
    assert taxes == ["-1.01", "-1.00"]  # 1.01 for the first half, what is left for the second
    assert sum(Decimal(t) for t in taxes) == -Decimal("2.01")
    assert header(store, second.invoice_id)["GrossAmount"] == "-11.05"
    assert services.audit(store, storage_settings) == []
