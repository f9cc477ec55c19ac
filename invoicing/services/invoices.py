"""Reading invoices from the store: one by id (H8), or a listing/export of a range (H7, X)."""

from __future__ import annotations

import heapq
import os
import pickle
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from io import BytesIO
from itertools import islice
from typing import Any

from invoicing.model import Invoice, LogEntry, Status
from invoicing.services.common import DEFAULT_WORKERS, parallel
from invoicing.storage import codec, rows
from invoicing.storage.errors import NotFound
from invoicing.storage.keys import describe_key
from invoicing.storage.store import Store
from invoicing.workbook.layout import INVOICES, RUN_LOG
from invoicing.workbook.writer import invoice_order, log_order, write_invoice_chunks


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


# An export hands the writer this many invoices (and RunLog rows) at a time.
EXPORT_CHUNK = 2_000

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
    in range (X4), in the invoice workbook's order (X: invoices by date, contract, customer; the
    RunLog by date, contract): ``iter_invoices`` in one list."""
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
    chunk: int = EXPORT_CHUNK,
) -> Iterator[Chunk]:
    """What ``list_invoices`` answers, ``chunk`` invoices and ``chunk`` RunLog rows at a time,
    in order, holding only a chunk and one contract per thread in memory: each contract's
    invoices and RunLog rows of the range are read once, sorted and spooled to a temporary
    file, and the contracts' runs are merged from there. (Reading the range a window of dates
    at a time would hold as little, but would query every contract once per window.)

    S8: it reads the range, not the history: the invoice index of the range's dates names the
    invoices and their contracts, the W index the contracts with a RunLog in the range, and
    only those rows are read from those contracts."""
    wanted = Status(status) if status else None
    lo, hi = start or date.min, end or date.max
    by_contract: dict[str, list[str]] = {}
    for row in store.indexed_invoices(lo, hi):
        by_contract.setdefault(row["ContractId"], []).append(decoded_id(row))
    ran = store.ran_contracts(lo, hi)
    registry = store.contracts()
    involved = set(by_contract) | (ran if ran is not None else {c for c, _ in registry})
    chosen = [c for c, _ in registry if c in involved and contract in (None, c)]

    with _Spool() as spool:

        def one(contract_id: str) -> tuple[tuple[int, int], tuple[int, int]]:
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
            invoices.sort(key=invoice_order)
            entries = []
            for run_date, marker in sorted(part.markers.items()):
                if not lo <= run_date <= hi:
                    continue
                parts = part.logs.get(run_date, ())
                entries += rows.log_from_parts(run_date, contract_id, marker, parts)
            return spool.add(invoices), spool.add(entries)

        runs = parallel(one, chosen, workers, store)
        # the sheets' own orders: a chunk then needs no other order than the one it comes in
        # (heapq.merge keeps each contract's rows of one date in the order they were given)
        invoices = heapq.merge(*(spool.read(*r[0]) for r in runs), key=invoice_order)
        entries = heapq.merge(*(spool.read(*r[1]) for r in runs), key=log_order)
        size = max(chunk, 1)
        while True:
            some = list(islice(invoices, size))
            log = list(islice(entries, size))
            if not some and not log:
                return
            yield some, log


class _Spool:
    """Records pickled one after the other into one temporary file (a run per ``add``), and
    read back run by run, lazily: what a merge of many runs needs, in little memory."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.lock = threading.Lock()

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def add(self, records: list[Any]) -> tuple[int, int]:
        """Spool ``records`` (from any thread): where their run starts, and how many."""
        blob = b"".join(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in records)
        with self.lock:
            offset = self.file.seek(0, os.SEEK_END)
            self.file.write(blob)
        return offset, len(records)

    def read(self, offset: int, count: int) -> Iterator[Any]:
        """The run spooled at ``offset``, one record at a time (only from the merging thread,
        after every ``add``)."""
        position = offset
        for _ in range(count):
            self.file.seek(position)
            record = pickle.load(self.file)
            position = self.file.tell()
            yield record


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
    chunk: int = EXPORT_CHUNK,
) -> Export:
    """The invoice workbook of what ``list_invoices`` answers, written a chunk at a time
    (``iter_invoices``): memory follows the chunk, not the range."""
    first: list[Invoice] = []

    def chunks() -> Iterator[Chunk]:
        for part in iter_invoices(store, start, end, status, contract, chunk=chunk):
            if len(first) < keep:
                first.extend(part[0][: keep - len(first)])
            yield part

    buffer = BytesIO()
    counts = write_invoice_chunks(chunks(), buffer)
    return Export(buffer.getvalue(), counts[INVOICES], counts[RUN_LOG], first)


def decoded_id(index_row: dict[str, str]) -> str:
    """The InvoiceId of an invoice index row (its RowKey; ids we make are never hashed)."""
    return describe_key(index_row["RowKey"])
