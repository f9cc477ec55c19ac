"""R23: decisions made in the downloaded invoice workbook, validated whole, applied in row order,
idempotent; the workbook may come back through LibreOffice."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from invoicing import services
from invoicing.errors import InputRejected
from invoicing.model import DetailStatus, Status
from invoicing.workbook.writer import invoice_workbook_bytes
from tests.storage.portfolios import stored, workbook
from tests.support.workbooks import HEADERS, Book

D = date.fromisoformat
DAY = D("2020-10-05")


def two_item_book(contracts: int) -> Book:
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for c in range(contracts):
        cid = f"C{c:03d}"
        book["Contracts"].append([cid, f"Contract {c}", "USD", 30])
        book["Customers"].append([cid, "K", "Customer", 100, None, None])
        book["ContractLines"].append(
            [
                *(cid, "L", "Work", "Time and material", None, None),
                *("Weekly", "Monday", DAY, None, None),
            ]
        )
        for item, amount in (("a", 10 + c), ("b", 5)):
            book["Transactions"].append(
                [
                    *(f"{cid}-{item}", cid, "L", "Time", D("2020-10-01"), "w"),
                    *(None, None, None, amount, "Yes"),
                ]
            )
    return book


def exported(store) -> bytes:
    invoices, log = services.list_invoices(store)
    return invoice_workbook_bytes(invoices, log)


def marked(
    data: bytes,
    invoices: dict[str, str],
    details: dict[tuple[str, str], str],
    retyped: dict[tuple[str, str], str] | None = None,
) -> bytes:
    """The exported workbook with decisions typed into its Decision columns, as a user would
    (and, with ``retyped``, a detail's SourceId overwritten by mistake)."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for sheet, wanted, key in (
        ("Invoices", invoices, lambda r, h: r[h["InvoiceId"]]),
        ("InvoiceLineDetails", details, lambda r, h: (r[h["InvoiceId"]], r[h["SourceId"]])),
    ):
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        if "Decision" not in header:
            ws.cell(row=1, column=len(header) + 1, value="Decision")
            header.append("Decision")
        h = {name: i for i, name in enumerate(header)}
        for row in ws.iter_rows(min_row=2):
            values = [c.value for c in row]
            values += [None] * (len(header) - len(values))
            decision = wanted.get(key(values, h))
            if decision:
                ws.cell(row=row[0].row, column=h["Decision"] + 1, value=decision)
            if sheet == "InvoiceLineDetails" and retyped and key(values, h) in retyped:
                ws.cell(row=row[0].row, column=h["SourceId"] + 1, value=retyped[key(values, h)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def draft_invoices(store, settings, contracts: int) -> list[str]:
    services.import_workbook(store, workbook(two_item_book(contracts)), settings)
    services.run_daily(store, settings, span=(DAY, DAY))
    invoices, _ = services.list_invoices(store)
    return [i.invoice_id for i in invoices]


@pytest.fixture
def drafts(store, storage_settings) -> list[str]:
    """150 draft invoices, one per contract: room for two hundred decisions."""
    return draft_invoices(store, storage_settings, 150)


@pytest.fixture
def few_drafts(store, storage_settings) -> list[str]:
    return draft_invoices(store, storage_settings, 6)


def test_two_hundred_decisions_apply_in_one_upload_in_row_order_and_twice_change_nothing(
    store, storage_settings, drafts
):
    for invoice_id in drafts[:50]:
        services.confirm(store, storage_settings, invoice_id)
    contract = {i: f"C{n:03d}" for n, i in enumerate(drafts)}
    inv: dict[str, str] = {}
    det: dict[tuple[str, str], str] = {}
    for i in drafts[:25]:
        inv[i] = "Credit"
    for i in drafts[25:50]:
        det[(i, f"{contract[i]}-a")] = "Credit"
    for i in drafts[50:110]:
        inv[i] = "Confirm"
    for i in drafts[50:80]:
        det[(i, f"{contract[i]}-b")] = "WriteOff"
    for i in drafts[110:130]:
        inv[i] = "Cancel"
    for i in drafts[130:150]:
        det[(i, f"{contract[i]}-a")] = "Remove"
        inv[i] = "Confirm"
    assert len(inv) + len(det) == 200
    upload = marked(exported(store), inv, det)

    result = services.decide_upload(upload, storage_settings)
    assert dict(result.done) == {
        "credit_notes": 50,
        "confirmed": 80,
        "written_off": 30,
        "cancelled": 20,
        "removed": 20,
    }
    confirmed_order = [n["InvoiceId"] for n in result.numbers if "InvoiceId" in n]
    assert confirmed_order == [i for i in drafts if inv.get(i) == "Confirm"]
    assert [n["Number"] for n in result.numbers if "InvoiceId" in n] == [
        f"INV-{n:06d}" for n in range(51, 131)
    ]
    assert services.get_invoice(store, drafts[140]).lines[0].details[0].status is (
        DetailStatus.REMOVED
    )
    assert services.audit(store, storage_settings) == []

    before = stored(store)
    again = services.decide_upload(upload, storage_settings)
    assert dict(again.done) == {} and len(again.already) == 200
    assert stored(store) == before


def test_bad_decisions_are_each_reported_at_their_cell_and_none_is_applied(
    store, storage_settings, few_drafts
):
    drafts = few_drafts
    services.confirm(store, storage_settings, drafts[0])
    upload = marked(
        exported(store),
        {drafts[0]: "Cancel", drafts[1]: "Approve", drafts[2]: "Credit", drafts[3]: "Cancel"},
        {(drafts[3], "C003-a"): "Remove", (drafts[4], "C004-b"): "WriteOff"},
        retyped={(drafts[4], "C004-b"): "C999-x"},
    )
    before = stored(store)
    with pytest.raises(InputRejected) as caught:
        services.decide_upload(upload, storage_settings)
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 5, "\n".join(messages)
    assert any("Invoices!" in m and "Approve" in m and "not one of" in m for m in messages)
    assert any("Confirmed: credit it instead of cancelling" in m for m in messages)
    assert any("only a confirmed invoice is credited" in m for m in messages)
    assert any("contradicts the invoice's decision Cancel" in m for m in messages)
    assert any("has no detail C999-x" in m for m in messages)
    assert all(m.split("!")[1][0].isalpha() for m in messages)  # each at its cell
    assert stored(store) == before
    assert services.get_invoice(store, drafts[0]).status is Status.CONFIRMED


def test_a_workbook_marked_and_saved_by_libreoffice_is_accepted(
    store, storage_settings, few_drafts, tmp_path: Path
):
    drafts = few_drafts
    upload = marked(exported(store), {drafts[0]: "Confirm", drafts[1]: "Cancel"}, {})
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice:  # LibreOffice is not part of make setup: the round trip runs where it is installed
        source = tmp_path / "marked.xlsx"
        source.write_bytes(upload)
        out = tmp_path / "out"
        subprocess.run(
            [soffice, "--headless", "--convert-to", "xlsx", "--outdir", str(out), str(source)],
            check=True,
            capture_output=True,
            timeout=180,
        )
        upload = (out / "marked.xlsx").read_bytes()
    result = services.decide_upload(upload, storage_settings)
    assert dict(result.done) == {"confirmed": 1, "cancelled": 1}
    assert services.get_invoice(store, drafts[0]).invoice_number == "INV-000001"
