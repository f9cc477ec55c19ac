"""R21 credit notes and R22 draft adjustments against real Azurite: shares go back to the backlog
or are closed for good, numbers stay gap-free, nothing is billed twice or lost."""

from __future__ import annotations

import io
import threading
from datetime import date
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.errors import BadRequest
from invoicing.model import DetailStatus, DocumentType, Status
from invoicing.storage.errors import WriteRefused, WrongState
from tests.storage.portfolios import workbook
from tests.support.workbooks import HEADERS, Book

D = date.fromisoformat
CREDIT_DAY = D("2020-10-07")


def weekly_book(
    amounts: dict[str, str], *, nte: int | None = None, contracts: int = 1, split: bool = False
) -> Book:
    """Contracts C0.. with one weekly (Monday) T&M line from 2020-10-05 and transactions dated
    2020-10-01 of the given amounts (ids suffixed with the contract number when several)."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for c in range(contracts):
        cid = f"C{c}"
        book["Contracts"].append([cid, f"Contract {c}", "USD", 30])
        if split:
            book["Customers"].append([cid, "K1", "First", 60, None, "Yes"])
            book["Customers"].append([cid, "K2", "Second", 40, None, None])
        else:
            book["Customers"].append([cid, "K", "Customer", 100, None, None])
        book["ContractLines"].append(
            [
                *(cid, "L", "Work", "Time and material", None, nte),
                *("Weekly", "Monday", D("2020-10-05"), None, None),
            ]
        )
        for tid, amount in amounts.items():
            name = tid if contracts == 1 else f"{tid}-{c}"
            book["Transactions"].append(
                [name, cid, "L", "Time", D("2020-10-01"), "w", None, None, None, amount, "Yes"]
            )
    return book


def drafts(store, day: str) -> list:
    invoices, _ = services.list_invoices(store, start=D(day), end=D(day))
    return invoices


def details(invoice) -> dict[str, tuple[Decimal, DetailStatus]]:
    return {d.source_id: (d.amount, d.status) for line in invoice.lines for d in line.details}


def confirmed_first_invoice(store, settings, amounts, **book):
    services.import_workbook(store, workbook(weekly_book(amounts, **book)), settings)
    services.run_daily(store, settings, span=(D("2020-10-05"), D("2020-10-05")))
    (invoice,) = drafts(store, "2020-10-05")
    return services.confirm(store, settings, invoice.invoice_id)


# ---- R21 ---------------------------------------------------------------------------------------


def test_a_partial_credit_returns_its_shares_and_they_go_out_at_the_next_due_run(
    store, storage_settings
):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})
    note = services.credit(store, storage_settings, invoice.invoice_id, ["T2"], today=CREDIT_DAY)
    assert note.document_type is DocumentType.CREDIT_NOTE and note.status is Status.CONFIRMED
    assert note.invoice_number == "CRN-000001"
    assert (note.credited_invoice_id, note.credited_number) == (invoice.invoice_id, "INV-000001")
    assert note.amount == Decimal("-20.00") and note.invoice_date == CREDIT_DAY
    assert details(note) == {"T2": (Decimal("-20.00"), DetailStatus.CREDITED)}
    original = services.get_invoice(store, invoice.invoice_id)
    assert original.credit_notes == ((note.invoice_id, "CRN-000001"),)
    assert services.get_invoice(store, note.invoice_id) == note

    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (again,) = drafts(store, "2020-10-12")
    assert details(again) == {"T2": (Decimal("20.00"), DetailStatus.INVOICED)}
    assert services.audit(store, storage_settings) == []


def test_a_full_credit_with_write_off_closes_the_shares_for_good(store, storage_settings):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})
    note = services.credit(
        store, storage_settings, invoice.invoice_id, write_off=True, today=CREDIT_DAY
    )
    assert note.amount == Decimal("-30.00")
    assert {s for s, (_, st) in details(note).items() if st is DetailStatus.WRITTEN_OFF} == {
        "T1",
        "T2",
    }
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-26")))
    assert [i.invoice_id for i in services.list_invoices(store)[0]] == sorted(
        [invoice.invoice_id, note.invoice_id], key=lambda i: i.startswith("CN")
    )
    assert services.audit(store, storage_settings) == []


def test_a_share_is_credited_once_and_only_a_confirmed_invoice_can_be(store, storage_settings):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})
    services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    with pytest.raises(services.AlreadyCredited, match="T1 already credited by CRN-000001"):
        services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    with pytest.raises(BadRequest, match="no invoiced detail T9"):
        services.credit(store, storage_settings, invoice.invoice_id, ["T9"], today=CREDIT_DAY)
    rest = services.credit(store, storage_settings, invoice.invoice_id, today=CREDIT_DAY)
    assert details(rest) == {"T2": (Decimal("-20.00"), DetailStatus.CREDITED)}
    with pytest.raises(services.AlreadyCredited):
        services.credit(store, storage_settings, invoice.invoice_id, today=CREDIT_DAY)
    with pytest.raises(WrongState):
        services.credit(store, storage_settings, rest.invoice_id, today=CREDIT_DAY)
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (draft,) = drafts(store, "2020-10-12")
    with pytest.raises(WrongState, match="not confirmed"):
        services.credit(store, storage_settings, draft.invoice_id, today=CREDIT_DAY)
    assert services.audit(store, storage_settings) == []


def test_twenty_concurrent_credits_get_twenty_gap_free_numbers(store, storage_settings):
    services.import_workbook(
        store, workbook(weekly_book({"T": "10"}, contracts=20)), storage_settings
    )
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    ids = [i.invoice_id for i in drafts(store, "2020-10-05")]
    for invoice_id in ids:
        services.confirm(store, storage_settings, invoice_id)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def one(invoice_id: str) -> None:
        try:
            note = services.credit(store, storage_settings, invoice_id, today=CREDIT_DAY)
            numbers.append(note.invoice_number or "")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == [f"CRN-{n:06d}" for n in range(1, 21)]
    assert services.audit(store, storage_settings) == []


def test_a_crash_between_taking_and_stamping_a_credit_note_number_leaves_no_gap(
    store, storage_settings
):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})

    def crash_at_stamp(label: str) -> None:
        if label == "confirm-stamp":
            raise WriteRefused("simulated crash")

    store.write_hook = crash_at_stamp
    with pytest.raises(WriteRefused):
        services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    store.write_hook = None
    # the audit settles the pending number and names the unfinished credit
    problems = services.audit(store, storage_settings)
    assert any("was started but never finished" in p for p in problems)
    # the next credit of the invoice finishes the first one, then makes its own
    second = services.credit(store, storage_settings, invoice.invoice_id, ["T2"], today=CREDIT_DAY)
    assert second.invoice_number == "CRN-000002"
    notes = services.get_invoice(store, invoice.invoice_id).credit_notes
    assert [number for _, number in notes] == ["CRN-000001", "CRN-000002"]
    assert services.audit(store, storage_settings) == []


def test_a_credit_interrupted_before_its_rows_is_finished_by_the_next_credit(
    store, storage_settings
):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})

    def crash_after_recording(label: str) -> None:
        if label == "credit-rows":
            raise WriteRefused("simulated crash")

    store.write_hook = crash_after_recording
    with pytest.raises(WriteRefused):
        services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    store.write_hook = None
    assert any("never finished" in p for p in services.audit(store, storage_settings))
    # the same credit again: the recorded one is finished, and T1 is then already credited
    with pytest.raises(services.AlreadyCredited, match="CRN-000001"):
        services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    assert services.audit(store, storage_settings) == []


def test_a_credit_frees_room_under_the_not_to_exceed(store, storage_settings):
    # NTE 100: T1 (60) goes out on Oct 5, T2 (50) is held; crediting T1 (written off) makes room
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "60", "T2": "50"}, nte=100)
    assert set(details(invoice)) == {"T1"}
    services.credit(
        store, storage_settings, invoice.invoice_id, ["T1"], write_off=True, today=CREDIT_DAY
    )
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (draft,) = drafts(store, "2020-10-12")
    assert details(draft) == {"T2": (Decimal("50.00"), DetailStatus.INVOICED)}
    assert services.audit(store, storage_settings) == []


def test_crediting_one_customers_invoice_of_a_split_reinvoices_only_that_share(
    store, storage_settings
):
    book = weekly_book({"T1": "7.50"}, split=True)
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    k1, k2 = drafts(store, "2020-10-05")
    services.confirm(store, storage_settings, k1.invoice_id)
    services.confirm(store, storage_settings, k2.invoice_id)
    services.credit(store, storage_settings, k2.invoice_id, today=CREDIT_DAY)
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (again,) = drafts(store, "2020-10-12")
    assert (again.customer_id, details(again)) == (
        "K2",
        {"T1": (Decimal("3.00"), DetailStatus.INVOICED)},
    )
    assert services.audit(store, storage_settings) == []


# ---- R22 ---------------------------------------------------------------------------------------


def test_removed_details_go_back_to_the_backlog_written_off_ones_never_return(
    store, storage_settings
):
    book = weekly_book({"T1": "10", "T2": "20", "T3": "30"})
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    adjusted = services.adjust(
        store, storage_settings, draft.invoice_id, remove=["T1"], write_off=["T2"], note="goodwill"
    )
    assert adjusted.status is Status.DRAFT and adjusted.amount == Decimal("30.00")
    assert adjusted.lines[0].amount == Decimal("30.00")
    assert details(adjusted)["T2"] == (Decimal("20.00"), DetailStatus.WRITTEN_OFF)
    assert adjusted.lines[0].details[1].note == "goodwill"
    # the same adjustment again changes nothing
    again = services.adjust(store, storage_settings, draft.invoice_id, remove=["T1"])
    assert again == adjusted
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (next_draft,) = drafts(store, "2020-10-12")
    assert details(next_draft) == {"T1": (Decimal("10.00"), DetailStatus.INVOICED)}
    assert services.audit(store, storage_settings) == []


def test_an_emptied_draft_becomes_cancelled_and_only_a_draft_can_be_adjusted(
    store, storage_settings
):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10"})
    with pytest.raises(WrongState):
        services.adjust(store, storage_settings, invoice.invoice_id, remove=["T1"])
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-06")))
    book = weekly_book({"T1": "10", "T2": "20"})
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-07"), D("2020-10-12")))
    (draft,) = drafts(store, "2020-10-12")
    with pytest.raises(BadRequest, match="no detail T9"):
        services.adjust(store, storage_settings, draft.invoice_id, remove=["T9"])
    with pytest.raises(BadRequest, match="both removed and written off"):
        services.adjust(store, storage_settings, draft.invoice_id, remove=["T2"], write_off=["T2"])
    emptied = services.adjust(store, storage_settings, draft.invoice_id, write_off=["T2"])
    assert emptied.status is Status.CANCELLED and emptied.amount == Decimal("0")
    services.run_daily(store, storage_settings, span=(D("2020-10-13"), D("2020-10-26")))
    assert drafts(store, "2020-10-19") == [] and drafts(store, "2020-10-26") == []
    assert services.audit(store, storage_settings) == []


def test_adjust_credit_and_decide_on_the_command_line(
    store, storage_settings, monkeypatch, capsys, tmp_path
):
    from invoicing.cli import main
    from invoicing.workbook.writer import invoice_workbook_bytes

    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    services.import_workbook(
        store, workbook(weekly_book({"T1": "10", "T2": "20"}, contracts=2)), storage_settings
    )
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    first, second = (i.invoice_id for i in drafts(store, "2020-10-05"))
    assert main(["adjust", first, "--write-off", "T2-0", "--note", "duplicate"]) == 0
    assert "1 written off" in capsys.readouterr().out
    assert main(["adjust", first, "--remove", "NOPE"]) == 2
    assert "no detail NOPE" in capsys.readouterr().err
    assert main(["confirm", first]) == 0
    assert main(["credit", first, "--items", "T1-0"]) == 0
    assert "CRN-000001" in capsys.readouterr().out
    assert main(["credit", first, "--items", "T1-0"]) == 2  # a share is credited once
    assert "already credited by CRN-000001" in capsys.readouterr().err
    invoices, log = services.list_invoices(store)
    path = tmp_path / "decided.xlsx"
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(invoice_workbook_bytes(invoices, log)))
    ws = wb["Invoices"]
    header = [c.value for c in ws[1]]
    column = header.index("Decision") + 1 if "Decision" in header else len(header) + 1
    ws.cell(row=1, column=column, value="Decision")
    for row in ws.iter_rows(min_row=2):
        if row[0].value == second:
            ws.cell(row=row[0].row, column=column, value="Confirm")
    wb.save(path)
    assert main(["decide", str(path)]) == 0
    assert "confirmed 1" in capsys.readouterr().out
    assert services.get_invoice(store, second).invoice_number == "INV-000002"
    assert services.audit(store, storage_settings) == []


# ---- found by a hostile review -----------------------------------------------------------------


def test_a_second_credit_racing_the_first_never_renumbers_or_loses_a_credit_note(
    store, storage_settings
):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})
    other = services.open_store(storage_settings)
    seen: list = []

    def race(label: str) -> None:
        if label == "credit-pending" and not seen:
            note = services.credit(
                other, storage_settings, invoice.invoice_id, ["T2"], today=CREDIT_DAY
            )
            seen.append(note)

    store.write_hook = race
    first = services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    store.write_hook = None
    numbers = sorted([first.invoice_number, seen[0].invoice_number])
    assert numbers == ["CRN-000001", "CRN-000002"]
    assert services.audit(store, storage_settings) == []


def test_a_run_never_deletes_a_credit_note_being_made(store, storage_settings):
    invoice = confirmed_first_invoice(store, storage_settings, {"T1": "10", "T2": "20"})

    def crash(label: str) -> None:
        if label == "counter-take":
            raise WriteRefused("simulated crash")

    store.write_hook = crash
    with pytest.raises(WriteRefused):
        services.credit(store, storage_settings, invoice.invoice_id, ["T1"], today=CREDIT_DAY)
    store.write_hook = None
    assert any("not numbered yet" in p for p in services.audit(store, storage_settings))
    services.run_daily(store, storage_settings, span=(CREDIT_DAY, D("2020-10-12")))
    note = services.credit(store, storage_settings, invoice.invoice_id, ["T2"], today=CREDIT_DAY)
    assert note.invoice_number == "CRN-000002"
    assert [n for _, n in services.get_invoice(store, invoice.invoice_id).credit_notes] == [
        "CRN-000001",
        "CRN-000002",
    ]
    assert services.audit(store, storage_settings) == []


def test_an_overlong_write_off_note_is_a_bad_request_not_a_loop(store, storage_settings):
    services.import_workbook(store, workbook(weekly_book({"T1": "10"})), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    with pytest.raises(BadRequest, match="at most 1,000"):
        services.adjust(
            store, storage_settings, draft.invoice_id, write_off=["T1"], note="x" * 40000
        )


def test_a_large_invoice_is_credited_in_full(store, storage_settings):
    amounts = {f"T{n:04d}-with-a-long-transaction-id": "1" for n in range(1500)}
    invoice = confirmed_first_invoice(store, storage_settings, amounts)
    note = services.credit(store, storage_settings, invoice.invoice_id, today=CREDIT_DAY)
    assert note.amount == Decimal("-1500.00")
    with pytest.raises(services.AlreadyCredited):
        services.credit(store, storage_settings, invoice.invoice_id, today=CREDIT_DAY)
    assert services.audit(store, storage_settings) == []


def test_a_written_off_item_cannot_change_and_a_credited_one_can(store, storage_settings):
    from invoicing.errors import InputRejected

    book = weekly_book({"T1": "10", "T2": "20"})
    services.import_workbook(store, workbook(book), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-05"), D("2020-10-05")))
    (draft,) = drafts(store, "2020-10-05")
    services.adjust(store, storage_settings, draft.invoice_id, write_off=["T1"])
    services.confirm(store, storage_settings, draft.invoice_id)
    services.credit(store, storage_settings, draft.invoice_id, ["T2"], today=CREDIT_DAY)
    changed = weekly_book({"T1": "25", "T2": "20"})
    with pytest.raises(InputRejected, match="T1 was written off"):
        services.import_workbook(store, workbook(changed), storage_settings)
    corrected = weekly_book({"T1": "10", "T2": "22"})  # T2 is back in the backlog: it may change
    services.import_workbook(store, workbook(corrected), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-06"), D("2020-10-12")))
    (again,) = drafts(store, "2020-10-12")
    assert details(again) == {"T2": (Decimal("22.00"), DetailStatus.INVOICED)}
    assert services.audit(store, storage_settings) == []


def test_audit_names_a_share_whose_line_has_no_due_date_left(store, storage_settings):
    """Review finding: a credited or cancelled share whose line is never due again would wait
    for ever, unbilled; audit names it."""
    from tests.support.workbooks import minimal_rows

    services.import_workbook(store, workbook(minimal_rows()), storage_settings)
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-11-02")))
    oct15 = [i for i in drafts(store, "2020-10-15") if i.customer_id == "K1"]
    assert oct15  # the milestone M1 (L3's only milestone date)
    services.cancel(store, storage_settings, oct15[0].invoice_id)
    problems = services.audit(store, storage_settings)
    assert any("Milestone M1" in p and "no due date after 2020-10-15" in p for p in problems)
