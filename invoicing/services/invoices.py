"""Reading invoices from the store: one by id (H8), or a listing/export of a range (H7, X)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from io import BytesIO
from typing import Any

from invoicing.model import Invoice, LogEntry, Status
from invoicing.services.common import DEFAULT_WORKERS, parallel
from invoicing.storage import codec, rows
from invoicing.storage.errors import NotFound
from invoicing.storage.keys import describe_key
from invoicing.storage.store import Store
from invoicing.workbook.layout import INVOICES, RUN_LOG
from invoicing.workbook.writer import write_invoice_chunks


def locate(store: Store, invoice_id: str) -> str:
    """The ContractId that holds ``invoice_id`` (the invoice index); NotFound otherwise."""
    contract_id = store.index_lookup(invoice_id)
    if contract_id is None:
        raise NotFound(invoice_id)
    return contract_id


def get_invoice(store: Store, invoice_id: str) -> Invoice:
    """One invoice with its lines and details, status and number (H8); NotFound otherwise."""
    header, lines, details = store.invoice_entities(locate(store, invoice_id), invoice_id)
    if header is None or codec.is_pending(header):
        raise NotFound(invoice_id)
    return codec.invoice_from(header, lines, details)


# An export reads, writes and lets go of about this many invoices at a time (a window of whole
# invoice dates), so its memory follows the window, not the range.
EXPORT_WINDOW = 2_000

Chunk = tuple[list[Invoice], list[LogEntry]]


def list_invoices(
    store: Store,
    start: date | None = None,
    end: date | None = None,
    status: Status | str | None = None,
    contract: str | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
) -> Chunk:
    """Committed invoices by invoice date / status / contract, and the stored RunLog of the dates
    in range (X4), sorted like the preview (X: date, contract, customer): ``iter_invoices`` in
    one list."""
    invoices: list[Invoice] = []
    log: list[LogEntry] = []
    for chunk in iter_invoices(store, start, end, status, contract, workers=workers):
        invoices += chunk[0]
        log += chunk[1]
    return invoices, log


def iter_invoices(
    store: Store,
    start: date | None = None,
    end: date | None = None,
    status: Status | str | None = None,
    contract: str | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    window: int = EXPORT_WINDOW,
) -> Iterator[Chunk]:
    """What ``list_invoices`` answers, a window of consecutive dates at a time (about
    ``window`` invoices each; one date is never split), in order: the export writes each
    window and lets it go.

    S8: it reads the range, not the history: the invoice index of the range's dates names the
    invoices and their contracts, the W index the contracts with a RunLog in each window, and
    only those rows are read from those contracts."""
    wanted = Status(status) if status else None
    lo, hi = start or date.min, end or date.max
    indexed = store.indexed_invoices(lo, hi)
    if contract is not None:
        indexed = [r for r in indexed if r["ContractId"] == contract]
    registry = store.contracts()
    if contract is not None:
        registry = [(c, o) for c, o in registry if c == contract]
    for span, found in _windows(indexed, lo, hi, max(window, 1)):
        yield _read_window(store, registry, found, span, wanted, workers)


def _windows(
    indexed: list[dict[str, Any]], lo: date, hi: date, window: int
) -> Iterator[tuple[tuple[date, date], list[dict[str, Any]]]]:
    """lo..hi cut into consecutive spans, each ending on an invoice date once it holds at least
    ``window`` indexed invoices (the last one ends at hi), with the index rows of each."""
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in indexed:
        by_day.setdefault(codec.day(row["InvoiceDate"]), []).append(row)
    begin, found = lo, []
    for day in sorted(by_day):
        found += by_day[day]
        if len(found) >= window and day < hi:
            yield (begin, day), found
            begin, found = day + timedelta(days=1), []
    yield (begin, hi), found


def _read_window(
    store: Store,
    registry: list[tuple[str, int]],
    indexed: list[dict[str, Any]],
    span: tuple[date, date],
    wanted: Status | None,
    workers: int,
) -> Chunk:
    lo, hi = span
    by_contract: dict[str, list[str]] = {}
    for row in indexed:
        by_contract.setdefault(row["ContractId"], []).append(decoded_id(row))
    ran = store.ran_contracts(lo, hi)
    involved = set(by_contract) | (ran if ran is not None else {c for c, _ in registry})
    chosen = [(c, o) for c, o in registry if c in involved]

    def one(entry: tuple[str, int]) -> tuple[list[Invoice], list[tuple[date, int, int, LogEntry]]]:
        contract_id, order = entry
        part = store.load_range(contract_id, by_contract.get(contract_id, ()), (lo, hi))
        invoices = []
        for invoice_id, header in part.headers.items():
            if codec.is_pending(header):
                continue
            if not lo <= codec.day(header["InvoiceDate"]) <= hi:
                continue
            if wanted is not None and header.get("Status") != wanted.value:
                continue
            invoices.append(part.invoice(invoice_id))
        entries = []
        for run_date, marker in part.markers.items():
            if not lo <= run_date <= hi:
                continue
            log = rows.log_from_parts(run_date, contract_id, marker, part.logs.get(run_date, ()))
            for seq, entry in enumerate(log):
                entries.append((run_date, order, seq, entry))
        return invoices, entries

    results = parallel(one, chosen, workers, store)
    invoices = [inv for r in results for inv in r[0]]
    invoices.sort(key=lambda i: (i.invoice_date, i.contract_id, i.customer_id))
    entries = sorted((e for r in results for e in r[1]), key=lambda e: e[:3])
    return invoices, [e[3] for e in entries]


@dataclass(frozen=True)
class Export:
    """An invoice workbook of a range (X): its bytes, what it holds, and its first invoices
    (as many as asked for: a summary for the user)."""

    data: bytes
    invoices: int
    log_rows: int
    first: list[Invoice]


def export_workbook(
    store: Store,
    start: date | None = None,
    end: date | None = None,
    status: Status | str | None = None,
    contract: str | None = None,
    *,
    keep: int = 0,
    window: int = EXPORT_WINDOW,
) -> Export:
    """The invoice workbook of what ``list_invoices`` answers, written a window at a time
    (``iter_invoices``): memory follows the window, not the range."""
    first: list[Invoice] = []

    def chunks() -> Iterator[Chunk]:
        for chunk in iter_invoices(store, start, end, status, contract, window=window):
            if len(first) < keep:
                first.extend(chunk[0][: keep - len(first)])
            yield chunk

    buffer = BytesIO()
    counts = write_invoice_chunks(chunks(), buffer)
    return Export(buffer.getvalue(), counts[INVOICES], counts[RUN_LOG], first)


def decoded_id(index_row: dict[str, str]) -> str:
    """The InvoiceId of an invoice index row (its RowKey; ids we make are never hashed)."""
    return describe_key(index_row["RowKey"])
