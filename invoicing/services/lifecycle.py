"""Confirm and cancel (R15, R16), and the gap-free invoice numbers.

Confirm and cancel do not take the run lease: each is one ETag-guarded state change of one invoice
header (plus the ETag-guarded number counter) that never conflicts with a run, which only writes
uncommitted (contract, date) rows. So accountants can confirm while a long run works, and twenty
concurrent confirms all succeed.

Invoice numbers come from one counter entity updated with ``If-Match`` (ETag). Taking a number
records the pending assignment {number -> invoice} in the same update; nobody takes another
number while an assignment is pending: the next confirm (or audit) first *settles* it - stamps the
invoice if it is still a Draft, or gives the number back (counter - 1) if the invoice was cancelled
meanwhile. So a crash between taking a number and stamping it never leaves a gap, and numbers are
gap-free and unique in confirmation order however many confirms run at once.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceModifiedError

from invoicing.model import Invoice, Status
from invoicing.services.invoices import get_invoice, locate
from invoicing.settings import Settings
from invoicing.storage import codec, rows
from invoicing.storage.errors import NotFound, WrongState
from invoicing.storage.store import Store


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:06d}"


def settle_pending_number(store: Store, settings: Settings) -> None:
    """Finish (or undo) an invoice-number assignment left pending by an interrupted confirm."""
    while True:
        counter = store.counter()
        pending = rows.counter_pending(counter)
        if pending is None:
            return
        seq, invoice_id, contract_id = pending
        last = rows.counter_last(counter)
        header = store.header(contract_id, invoice_id)
        status = codec.header_status(header)
        try:
            if status == Status.DRAFT.value:
                assert header is not None
                number = format_number(settings.invoice_number_prefix, seq)
                stamped = codec.confirmed(header, number, seq)
                store.replace_if(store.table, stamped, header["_etag"], "confirm-stamp")
                new = rows.counter_entity(last)
            elif status == Status.CONFIRMED.value and codec.header_seq(header) == seq:
                new = rows.counter_entity(last)
            else:  # cancelled (or gone) before it was stamped: give the number back
                new = rows.counter_entity(seq - 1 if last == seq else last)
            store.replace_if(store.globals, new, counter["_etag"], "counter-settle")
        except ResourceModifiedError:
            continue  # someone else settled or stamped meanwhile: look again


def confirm(store: Store, settings: Settings, invoice_id: str) -> Invoice:
    """Draft -> Confirmed with the next gap-free InvoiceNumber (R15, R16)."""
    contract_id = locate(store, invoice_id)
    while True:
        settle_pending_number(store, settings)
        header = store.header(contract_id, invoice_id)
        if header is None or codec.is_pending(header):
            raise NotFound(invoice_id)
        if header["Status"] != Status.DRAFT.value:
            raise WrongState(invoice_id, header["Status"])
        counter = store.counter()
        if rows.counter_pending(counter) is not None:
            continue
        seq = rows.counter_last(counter) + 1
        try:
            store.replace_if(
                store.globals,
                rows.counter_entity(seq, (seq, invoice_id, contract_id)),
                counter["_etag"],
                "counter-take",
            )
        except ResourceModifiedError:
            continue
        break
    # the number is ours and recorded as pending: stamp it, then clear the pending assignment
    settle_pending_number(store, settings)
    invoice = get_invoice(store, invoice_id)
    if invoice.status is not Status.CONFIRMED:
        raise WrongState(invoice_id, invoice.status.value)  # cancelled meanwhile: number given back
    if invoice.invoice_number != format_number(settings.invoice_number_prefix, seq):
        # another confirm of the same invoice won the race; ours was given back
        raise WrongState(invoice_id, invoice.status.value)
    return invoice


def cancel(store: Store, settings: Settings, invoice_id: str) -> Invoice:
    """Draft -> Cancelled (R15); its shares go out again on their line's next due run. Cancelling
    a cancelled invoice is a no-op; a confirmed one is WrongState."""
    contract_id = locate(store, invoice_id)
    while True:
        header = store.header(contract_id, invoice_id)
        if header is None or codec.is_pending(header):
            raise NotFound(invoice_id)
        status = header["Status"]
        if status == Status.CANCELLED.value:
            break
        if status != Status.DRAFT.value:
            raise WrongState(invoice_id, status)
        try:
            store.replace_if(store.table, codec.cancelled(header), header["_etag"], "cancel")
        except ResourceModifiedError:
            continue
        break
    return get_invoice(store, invoice_id)
