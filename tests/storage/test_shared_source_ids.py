"""A TransactionId equal to a MilestoneId on the same invoice (W9 makes ids unique per kind only):
adjust, credit and decide refuse a change by that SourceId instead of applying it to both details
(a write-off of both would silently lose the other one's money)."""

from __future__ import annotations

import pytest

from invoicing import services
from invoicing.errors import BadRequest
from tests.storage.portfolios import workbook
from tests.storage.test_corrections import D, drafts, weekly_book


def shared_id_draft(store, settings) -> str:
    book = weekly_book({"X1": "10", "T2": "20"})
    book["ContractLines"].append(
        ["C0", "FP", "Milestones", "Fixed price", None, None, None, None, None, None, None]
    )
    book["Milestones"].append(["C0", "FP", "X1", "Kick-off", D("2020-10-05"), 500, "Yes"])
    services.import_workbook(store, workbook(book), settings)
    services.run_daily(store, settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    details = [d for li in draft.lines for d in li.details]
    kinds = sorted(d.source_type.value for d in details if d.source_id == "X1")
    assert kinds == ["Milestone", "Transaction"]
    return draft.invoice_id


def test_adjusting_a_shared_source_id_is_refused_and_changes_nothing(store, storage_settings):
    invoice_id = shared_id_draft(store, storage_settings)
    before = services.get_invoice(store, invoice_id)
    with pytest.raises(BadRequest, match="both a transaction and a milestone"):
        services.adjust(store, storage_settings, invoice_id, write_off=["X1"])
    assert services.get_invoice(store, invoice_id) == before
    # an unambiguous id still adjusts
    adjusted = services.adjust(store, storage_settings, invoice_id, remove=["T2"])
    assert adjusted.amount == before.amount - 20


def test_crediting_a_shared_source_id_is_refused_but_a_full_credit_works(store, storage_settings):
    invoice_id = shared_id_draft(store, storage_settings)
    services.confirm(store, storage_settings, invoice_id)
    with pytest.raises(BadRequest, match="both a transaction and a milestone"):
        services.credit(store, storage_settings, invoice_id, items=["X1"])
    note = services.credit(store, storage_settings, invoice_id, write_off=True)
    assert note.amount == -services.get_invoice(store, invoice_id).amount
    assert services.audit(store, storage_settings) == []
