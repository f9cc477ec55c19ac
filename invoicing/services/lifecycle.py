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

from dataclasses import dataclass

from azure.core.exceptions import ResourceModifiedError

from invoicing.model import Invoice, Status
from invoicing.services.documents import snapshot_parties
from invoicing.services.invoices import get_invoice, locate
from invoicing.settings import Settings
from invoicing.storage import codec, rows
from invoicing.storage.errors import NotFound, WrongState
from invoicing.storage.store import Store


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:06d}"


@dataclass(frozen=True, slots=True)
class Series:
    """A gap-free number series: its counter row, its prefix setting, and the header status a
    pending number is stamped on (a Draft invoice; a credit note written but not yet numbered)."""

    counter: str
    stampable: str

    def prefix(self, settings: Settings) -> str:
        if self.counter == rows.CREDIT_COUNTER_RK:
            return settings.credit_note_prefix
        return settings.invoice_number_prefix


INVOICES = Series(rows.COUNTER_RK, Status.DRAFT.value)
CREDIT_NOTES = Series(rows.CREDIT_COUNTER_RK, codec.PENDING)


def settle_pending_number(store: Store, settings: Settings, series: Series = INVOICES) -> None:
    """Finish (or undo) a number assignment left pending by an interrupted confirm or credit."""
    while True:
        counter = store.counter(series.counter)
        pending = rows.counter_pending(counter)
        if pending is None:
            return
        seq, invoice_id, contract_id = pending
        last = rows.counter_last(counter)
        header = store.header(contract_id, invoice_id)
        status = codec.header_status(header)
        try:
            if status == series.stampable:
                assert header is not None
                number = format_number(series.prefix(settings), seq)
                stamped = codec.confirmed(header, number, seq)
                # a credit note becomes live: what its contract has invoiced changes (snapshot)
                why = f"{invoice_id} issued" if series is CREDIT_NOTES else None
                store.replace_if(
                    store.table, stamped, header["_etag"], "confirm-stamp", stale_state=why
                )
                new = rows.counter_entity(last, series=series.counter)
            elif status == Status.CONFIRMED.value and codec.header_seq(header) == seq:
                new = rows.counter_entity(last, series=series.counter)
            else:  # cancelled (or gone) before it was stamped: give the number back
                new = rows.counter_entity(seq - 1 if last == seq else last, series=series.counter)
            store.replace_if(store.globals, new, counter["_etag"], "counter-settle")
        except ResourceModifiedError:
            continue  # someone else settled or stamped meanwhile: look again


def take_number(
    store: Store, settings: Settings, series: Series, invoice_id: str, contract_id: str
) -> int | None:
    """Take the series' next number for a stampable header and stamp it (R16, R21); None when
    the header is no longer stampable. Gap-free however many run at once (see module doc)."""
    while True:
        settle_pending_number(store, settings, series)
        header = store.header(contract_id, invoice_id)
        if codec.header_status(header) != series.stampable:
            return None
        counter = store.counter(series.counter)
        if rows.counter_pending(counter) is not None:
            continue
        seq = rows.counter_last(counter) + 1
        try:
            store.replace_if(
                store.globals,
                rows.counter_entity(seq, (seq, invoice_id, contract_id), series=series.counter),
                counter["_etag"],
                "counter-take",
            )
        except ResourceModifiedError:
            continue
        # the number is ours and recorded as pending: stamp it, then clear the assignment
        settle_pending_number(store, settings, series)
        return seq


def confirm(store: Store, settings: Settings, invoice_id: str) -> Invoice:
    """Draft -> Confirmed with the next gap-free InvoiceNumber (R15, R16)."""
    contract_id = locate(store, invoice_id)
    header = store.header(contract_id, invoice_id)
    if header is None or codec.is_pending(header):
        raise NotFound(invoice_id)
    if header["Status"] != Status.DRAFT.value:
        raise WrongState(invoice_id, header["Status"])
    seq = take_number(store, settings, INVOICES, invoice_id, contract_id)
    invoice = get_invoice(store, invoice_id)
    if seq is None or invoice.status is not Status.CONFIRMED:
        raise WrongState(invoice_id, invoice.status.value)  # cancelled or confirmed meanwhile
    if invoice.invoice_number != format_number(settings.invoice_number_prefix, seq):
        # another confirm of the same invoice won the race; ours was given back
        raise WrongState(invoice_id, invoice.status.value)
    snapshot_parties(store, contract_id, invoice_id)  # E3: the parties it is issued to
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
            store.replace_if(
                store.table,
                codec.cancelled(header),
                header["_etag"],
                "cancel",
                stale_state=f"{invoice_id} cancelled",  # its shares go out again (snapshot)
            )
        except ResourceModifiedError:
            continue
        break
    return get_invoice(store, invoice_id)
