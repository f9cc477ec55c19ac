"""Reading invoices from the store: one by id (H8), or a listing/export of a range (H7, X)."""

from __future__ import annotations

from datetime import date

from invoicing.model import Invoice, LogEntry, Status
from invoicing.services.common import DEFAULT_WORKERS, parallel
from invoicing.storage import codec, rows
from invoicing.storage.errors import NotFound
from invoicing.storage.keys import describe_key
from invoicing.storage.store import Store


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


def list_invoices(
    store: Store,
    start: date | None = None,
    end: date | None = None,
    status: Status | str | None = None,
    contract: str | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
) -> tuple[list[Invoice], list[LogEntry]]:
    """Committed invoices by invoice date / status / contract, and the stored RunLog of the dates
    in range (X4), sorted like the preview (X: date, contract, customer).

    S8: it reads the range, not the history: the invoice index of the range's dates names the
    invoices and their contracts, the W index the contracts with a RunLog in the range, and only
    those rows are read from those contracts."""
    wanted = Status(status) if status else None
    lo, hi = start or date.min, end or date.max
    by_contract: dict[str, list[str]] = {}
    for row in store.indexed_invoices(lo, hi):
        by_contract.setdefault(row["ContractId"], []).append(decoded_id(row))
    ran = store.ran_contracts(lo, hi)
    registry = store.contracts()
    involved = set(by_contract) | (ran if ran is not None else {c for c, _ in registry})
    chosen = [(c, o) for c, o in registry if c in involved]
    if contract is not None:
        chosen = [(c, o) for c, o in chosen if c == contract]

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


def decoded_id(index_row: dict[str, str]) -> str:
    """The InvoiceId of an invoice index row (its RowKey; ids we make are never hashed)."""
    return describe_key(index_row["RowKey"])
