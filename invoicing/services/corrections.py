"""Corrections an accountant makes: adjust a draft (R22), credit a confirmed invoice (R21).

Neither takes the run lease: like confirm and cancel, each is guarded by the ETag of the one
invoice header it changes, and a run never writes committed invoices.

A credit is made in steps that a crash can interrupt anywhere without a gap or a lost share:

1. the original invoice's header records the credit (its sequence, the details it takes, write
   off or not) with ``If-Match``: concurrent credits of one invoice are serialised here, and a
   share can be credited only once;
2. the credit note's lines and details are written, then its header as Pending (not live);
3. a number of the credit-note series is taken and stamped (``lifecycle.take_number``, the same
   pending-assignment scheme as invoice numbers), which makes the credit note Confirmed and live;
4. the original's record of the credit gets the number.

A credit recorded in step 1 but not finished is finished by the next credit of that invoice,
or named by ``audit`` until then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableTransactionError

from invoicing.errors import BadRequest
from invoicing.model import DetailStatus, DocumentType, Invoice, InvoiceLine, Status
from invoicing.services.documents import snapshot_parties
from invoicing.services.invoices import get_invoice, locate
from invoicing.services.lifecycle import CREDIT_NOTES, take_number
from invoicing.services.runs import today_in
from invoicing.settings import Settings
from invoicing.storage import codec, rows, snapshot
from invoicing.storage.errors import AlreadyCredited, NotFound, WrongState
from invoicing.storage.keys import encode_key
from invoicing.storage.store import MAX_BATCH_OPS, Store, replace_if_op, upsert_op
from invoicing.tax import credit_tax

ZERO = Decimal(0)
MAX_NOTE = 1_000  # a write-off note is a sentence, and it must fit a stored detail
MAX_ATTEMPTS = 50  # ETag conflicts retried; a livelock this long means something else is wrong
MAX_CREDIT_RECORD = 30_000  # characters of the invoice's credit record (one table property)


# ---- adjust a draft (R22) -----------------------------------------------------------------------


def adjust(
    store: Store,
    settings: Settings,
    invoice_id: str,
    remove: Iterable[str] = (),
    write_off: Iterable[str] = (),
    note: str = "",
) -> Invoice:
    """Remove details from a Draft (their shares go back to the backlog) or write them off
    (closed for good); lines and amount recomputed; an emptied draft becomes Cancelled."""
    remove, write_off = list(dict.fromkeys(remove)), list(dict.fromkeys(write_off))
    both = sorted(set(remove) & set(write_off))
    if both:
        raise BadRequest(f"{', '.join(both)}: both removed and written off; choose one")
    if not remove and not write_off:
        raise BadRequest("nothing to adjust: give details to remove or to write off")
    if len(note) > MAX_NOTE:
        raise BadRequest(f"the note is {len(note):,} characters; at most {MAX_NOTE:,}")
    contract_id = locate(store, invoice_id)
    for _attempt in range(MAX_ATTEMPTS):
        header, line_rows, detail_rows = store.invoice_entities(contract_id, invoice_id)
        if header is None or codec.is_pending(header):
            raise NotFound(invoice_id)
        invoice = codec.invoice_from(header, line_rows, detail_rows)
        if invoice.is_credit_note or invoice.status is not Status.DRAFT:
            raise WrongState(invoice_id, header["Status"])
        wanted = {s: DetailStatus.REMOVED for s in remove}
        wanted.update({s: DetailStatus.WRITTEN_OFF for s in write_off})
        adjusted, changed = _adjusted(invoice, wanted, note)
        if not changed:
            return invoice  # already so: adjusting twice changes nothing
        pk = encode_key(contract_id)
        new_header = codec.with_amounts(header, adjusted)
        if adjusted.status is Status.CANCELLED:
            new_header["Status"] = Status.CANCELLED.value
        lines = codec.line_entities(pk, adjusted)
        details = [e for e in codec.detail_entities(pk, adjusted) if e["RowKey"] in changed]
        ops = [replace_if_op(new_header, header["_etag"])]
        ops += [upsert_op(e) for e in (*lines, *details)]
        # what the contract has invoiced changes with the draft: its state is stale (snapshot)
        ops.append(upsert_op(snapshot.stale_entity(pk, f"{invoice_id} adjusted")))
        if len(ops) > MAX_BATCH_OPS:
            raise BadRequest(
                f"{len(details)} details and {len(lines)} lines to change do not fit one atomic "
                "change; adjust at most 80 details at a time"
            )
        try:
            store.transact(store.table, ops, "adjust")
        except TableTransactionError as exc:
            if _changed_meanwhile(exc):
                continue  # the header changed meanwhile (a confirm, another adjust): look again
            raise
        return get_invoice(store, invoice_id)
    raise WrongState(invoice_id, "changing", wanted="a draft left alone for a moment")


def _changed_meanwhile(exc: TableTransactionError) -> bool:
    """The transaction failed on its ETag condition (412), not on its content."""
    return getattr(exc, "status_code", None) == 412 or "UpdateConditionNotSatisfied" in str(exc)


def ambiguous_source_ids(invoice: Invoice, source_ids: Iterable[str]) -> list[str]:
    """The SourceIds that name both a transaction and a milestone on ``invoice`` (ids are unique
    per kind only, W9): an adjustment or a partial credit by such an id could not tell which
    detail is meant, so it is refused rather than applied to both."""
    kinds: dict[str, set[str]] = {}
    for line in invoice.lines:
        for d in line.details:
            kinds.setdefault(d.source_id, set()).add(d.source_type.value)
    return [s for s in source_ids if len(kinds.get(s, ())) > 1]


def _refuse_ambiguous(invoice: Invoice, source_ids: Iterable[str]) -> None:
    clash = ambiguous_source_ids(invoice, source_ids)
    if clash:
        raise BadRequest(
            f"{invoice.invoice_id}: {', '.join(clash[:10])} is both a transaction and a milestone "
            "on this invoice, so a change by SourceId cannot tell them apart; cancel the draft "
            "(or credit the invoice in full) instead"
        )


def _adjusted(
    invoice: Invoice, wanted: dict[str, DetailStatus], note: str
) -> tuple[Invoice, set[str]]:
    """The invoice with the wanted details' new status, and the RowKeys of the details that
    change. Unknown details, or a detail already in another state, are a BadRequest."""
    _refuse_ambiguous(invoice, wanted)
    found: dict[str, DetailStatus] = {}
    for line in invoice.lines:
        for d in line.details:
            found[d.source_id] = d.status
    unknown = [s for s in wanted if s not in found]
    if unknown:
        raise BadRequest(f"{invoice.invoice_id} has no detail {', '.join(unknown[:10])}")
    clash = [s for s, st in wanted.items() if found[s] not in (DetailStatus.INVOICED, st)]
    if clash:
        raise BadRequest(
            f"{invoice.invoice_id}: {', '.join(clash[:10])} already "
            f"{found[clash[0]].value}; it cannot change again"
        )
    changed: set[str] = set()
    lines = []
    for line in invoice.lines:
        details = []
        for n, d in enumerate(line.details, start=1):
            status = wanted.get(d.source_id)
            if status is not None and d.status is not status:
                kept_note = note if status is DetailStatus.WRITTEN_OFF else ""
                d = d._replace(status=status, note=kept_note)
                changed.add(codec.detail_key(invoice.invoice_id, line.line_number, n))
            details.append(d)
        amount = sum((d.amount for d in details if d.status is DetailStatus.INVOICED), ZERO)
        lines.append(line._replace(amount=amount, details=tuple(details)))
    total = sum((line.amount for line in lines), ZERO)
    live = any(d.status is DetailStatus.INVOICED for line in lines for d in line.details)
    status = invoice.status if live else Status.CANCELLED
    return invoice._replace(lines=tuple(lines), amount=total, status=status), changed


# ---- credit a confirmed invoice (R21) -----------------------------------------------------------


def credit_note_id(invoice_id: str, seq: int, day: date) -> str:
    """``CN-YYYYMMDD-`` + 10 hex digits of SHA-256 over the invoice id and the credit's sequence:
    deterministic, so a retried credit rewrites the same rows."""
    digest = hashlib.sha256(f"{invoice_id}\u001f{seq}".encode()).hexdigest()[:10]
    return f"CN-{day:%Y%m%d}-{digest}"


def credit(
    store: Store,
    settings: Settings,
    invoice_id: str,
    items: Sequence[str] | None = None,
    write_off: bool = False,
    *,
    today: date | None = None,
) -> Invoice:
    """Credit a Confirmed invoice in full (``items`` None) or for some details (by SourceId):
    a Confirmed credit note with its own gap-free number; the shares return to the backlog, or
    are closed for good with ``write_off``."""
    contract_id = locate(store, invoice_id)
    day = today or today_in(settings)
    while True:
        header, line_rows, detail_rows = store.invoice_entities(contract_id, invoice_id)
        if header is None or codec.is_pending(header):
            raise NotFound(invoice_id)
        invoice = codec.invoice_from(header, line_rows, detail_rows)
        if invoice.is_credit_note:
            raise WrongState(invoice_id, "a credit note", wanted="a confirmed invoice")
        if invoice.status is not Status.CONFIRMED:
            raise WrongState(invoice_id, invoice.status.value, wanted="confirmed")
        credits: list[dict[str, Any]] = json.loads(header.get("Credits") or "[]")
        unfinished = next((c for c in credits if not c.get("number")), None)
        if unfinished is not None:
            _finish(store, settings, contract_id, invoice, unfinished)
            continue
        credited = _credited(store, contract_id, credits)
        invoiced = [
            d.source_id
            for line in invoice.lines
            for d in line.details
            if d.status is DetailStatus.INVOICED
        ]
        if items is None:
            wanted = [s for s in invoiced if s not in credited]
            if not wanted:
                raise AlreadyCredited(invoice_id, invoiced, "earlier credit notes")
        else:
            wanted = list(dict.fromkeys(items))
            _refuse_ambiguous(invoice, wanted)
            unknown = [s for s in wanted if s not in invoiced]
            if unknown:
                raise BadRequest(f"{invoice_id} has no invoiced detail {', '.join(unknown[:10])}")
            again = [s for s in wanted if s in credited]
            if again:
                raise AlreadyCredited(invoice_id, again, str(credited[again[0]]))
            if not wanted:
                raise BadRequest("nothing to credit: give the details (SourceIds) to credit")
        seq = len(credits) + 1
        entry = {
            "id": credit_note_id(invoice_id, seq, day),
            "seq": seq,
            # everything not yet credited: recorded as "*" so that a large invoice's record fits
            "items": ALL_REMAINING if items is None else wanted,
            "writeOff": bool(write_off),
            "date": day.isoformat(),
            "number": None,
        }
        record = json.dumps([*credits, entry])
        if len(record) > MAX_CREDIT_RECORD:
            raise BadRequest(
                f"{invoice_id}: crediting {len(wanted):,} details one by one does not fit the "
                "invoice's record of its credits; credit the rest in full (no items)"
            )
        recorded = {**header, "Credits": record}
        try:
            store.replace_if(store.table, recorded, header["_etag"], "credit-begin")
        except ResourceModifiedError:
            continue  # another credit or a settle changed the invoice meanwhile: look again
        return _finish(store, settings, contract_id, invoice, entry)


ALL_REMAINING = "*"


def credited_source_ids(store: Store, invoice_id: str) -> set[str]:
    """The SourceIds of an invoice already on one of its credit notes (R21)."""
    contract_id = locate(store, invoice_id)
    header = store.header(contract_id, invoice_id)
    credits = json.loads((header or {}).get("Credits") or "[]")
    return set(_credited(store, contract_id, credits))


def _credited(store: Store, contract_id: str, credits: list[dict[str, Any]]) -> dict[str, str]:
    """SourceId -> the number (or id) of the credit note that credited it."""
    out: dict[str, str] = {}
    for c in credits:
        by = c.get("number") or c["id"]
        if c["items"] != ALL_REMAINING:
            out.update(dict.fromkeys(c["items"], by))
            continue
        _, _, details = store.invoice_entities(contract_id, c["id"])
        out.update(dict.fromkeys((d["SourceId"] for d in details), by))
    return out


def _credit_note(
    invoice: Invoice, entry: dict[str, Any], earlier: dict[str, str] | None = None
) -> Invoice:
    if entry["items"] == ALL_REMAINING:
        wanted = {
            d.source_id
            for line in invoice.lines
            for d in line.details
            if d.source_id not in (earlier or {})
        }
    else:
        wanted = set(entry["items"])
    status = DetailStatus.WRITTEN_OFF if entry.get("writeOff") else DetailStatus.CREDITED
    lines: list[InvoiceLine] = []
    for line in invoice.lines:
        details = tuple(
            d._replace(amount=-d.amount, status=status, note="")
            for d in line.details
            if d.source_id in wanted and d.status is DetailStatus.INVOICED
        )
        if details:
            amount = sum((d.amount for d in details), ZERO)
            lines.append(line._replace(line_number=len(lines) + 1, amount=amount, details=details))
    day = date.fromisoformat(entry["date"])
    note = invoice._replace(
        invoice_id=entry["id"],
        invoice_date=day,
        due_date=day,
        amount=sum((line.amount for line in lines), ZERO),
        lines=tuple(lines),
        status=Status.CONFIRMED,
        invoice_number=None,
        document_type=DocumentType.CREDIT_NOTE,
        credited_invoice_id=invoice.invoice_id,
        credited_number=invoice.invoice_number,
        credit_notes=(),
    )
    return note._replace(stated_tax=credit_tax(note, invoice, earlier or {}, wanted))


def _finish(
    store: Store, settings: Settings, contract_id: str, invoice: Invoice, entry: dict[str, Any]
) -> Invoice:
    """Steps 2-4 for a credit recorded on the invoice: idempotent, so a retry finishes it."""
    header = store.header(contract_id, invoice.invoice_id)
    earlier = [
        c for c in json.loads((header or {}).get("Credits") or "[]") if c["seq"] < entry["seq"]
    ]
    note = _credit_note(invoice, entry, _credited(store, contract_id, earlier))
    pk = encode_key(contract_id)
    header = store.header(contract_id, note.invoice_id)
    if header is None:
        store.submit(store.globals, [upsert_op(rows.index_entity(note))], "index")
        rows_ = [*codec.line_entities(pk, note), *codec.detail_entities(pk, note)]
        store.submit(store.table, [upsert_op(e) for e in rows_], "credit-rows")
        # created, never overwritten: a concurrent finisher may have numbered it meanwhile
        with contextlib.suppress(ResourceExistsError):
            store.create(
                store.table, codec.header_entity(pk, note, codec.PENDING), "credit-pending"
            )
    take_number(store, settings, CREDIT_NOTES, note.invoice_id, contract_id)
    snapshot_parties(store, contract_id, note.invoice_id)  # E3: its invoice's parties
    stamped = get_invoice(store, note.invoice_id)
    _record_number(store, contract_id, invoice.invoice_id, entry["seq"], stamped.invoice_number)
    return stamped


def _record_number(
    store: Store, contract_id: str, invoice_id: str, seq: int, number: str | None
) -> None:
    while True:
        header = store.header(contract_id, invoice_id)
        assert header is not None
        credits = json.loads(header.get("Credits") or "[]")
        for c in credits:
            if c["seq"] == seq:
                if c.get("number") == number:
                    return
                c["number"] = number
        try:
            recorded = {**header, "Credits": json.dumps(credits)}
            store.replace_if(store.table, recorded, header["_etag"], "credit-end")
            return
        except ResourceModifiedError:
            continue
