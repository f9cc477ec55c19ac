"""Storage-backed use cases (S5-S9, R15-R19), one module each; the CLI and the Functions handlers
call them. Nothing here formats for a person (that is ``invoicing.cli.text``) or builds a table
row (that is ``invoicing.storage``).

=====================  ============================================================
module                 use case
=====================  ============================================================
``common``             open the store, hold the run lease, fan out over threads
``imports``            validate and import a workbook (S5, S5a)
``runs``               the daily run: dates (R19), plan and commit (R17, R18), ledger (S6)
``dispatch``           the run fanned out on a queue (S9): dispatch, the worker, the ledger
``worker``             draining the queue outside the Functions host (``worker``)
``invoices``           read one invoice or a range of them (H7, H8, export)
``lifecycle``          confirm and cancel, gap-free number series (R15, R16)
``corrections``        adjust a draft (R22), credit a confirmed invoice (R21)
``decisions``          decisions in bulk from the invoice workbook (R23)
``audit``              the store's invariants, one function each (S7)
``health``             storage reachable, and what needs someone (H2)
``documents``          an invoice or credit note as PDF, CII or UBL (E3, H15)
=====================  ============================================================

API::

    store = open_store(settings)                      # StorageNotConfigured when unset
    import_upload(data, settings)           -> ImportResult  (validates before opening the store)
    import_workbook(store, data, settings)  -> ImportResult
                                     (InputRejected, UploadRejected, LeaseHeld, LeaseLost)
    run_daily(store, settings, today=None, span=None) -> RunSummary   (BadRequest, LeaseHeld ...)
                       (INVOICE_DISPATCH=queue: a DispatchSummary; the workers invoice)
    process_message(store, settings, body, dequeue_count) -> WorkDone   (WorkFailed)
    drain(store, open_queue(settings), settings, ...) -> DrainResult
    confirm(store, settings, invoice_id)    -> Invoice          (NotFound, WrongState)
    cancel(store, settings, invoice_id)     -> Invoice          (NotFound, WrongState)
    adjust(store, settings, invoice_id, remove, write_off, note) -> Invoice  (BadRequest ...)
    credit(store, settings, invoice_id, items, write_off) -> Invoice (the credit note; ...)
    list_invoices(store, start, end, status, contract) -> (invoices, log)
    iter_invoices(store, start, end, status, contract) -> (invoices, log), a chunk at a time
    export_workbook(store, start, end, status, contract, keep=N) -> Export  (streamed, X)
    get_invoice(store, invoice_id)          -> Invoice          (NotFound)
    ledger_entries(store)                   -> list[dict]       (S6, JSON-able)
    audit(store)                            -> list[str]        (empty = passed)
    health(store) -> bool;  health_report(store) -> dict        (H2)
    invoice_document(store, invoice_id, fmt) -> RenderedDocument (NotFound, DocumentRefused)
    range_documents(store, fmt, start, end, contract) -> RenderedDocument | (id, refusal) ...
"""

from __future__ import annotations

from invoicing.services.audit import audit
from invoicing.services.common import DEFAULT_WORKERS, Progress, open_store
from invoicing.services.corrections import adjust, credit
from invoicing.services.decisions import DecisionResult, decide, decide_upload
from invoicing.services.dispatch import (
    DispatchSummary,
    WorkDone,
    WorkFailed,
    open_queue,
    process_message,
    run_daily,
)
from invoicing.services.documents import RenderedDocument, invoice_document, range_documents
from invoicing.services.health import health, health_report
from invoicing.services.imports import (
    ImportResult,
    import_portfolio,
    import_upload,
    import_workbook,
)
from invoicing.services.invoices import (
    Export,
    export_workbook,
    get_invoice,
    iter_invoices,
    list_invoices,
)
from invoicing.services.lifecycle import cancel, confirm, format_number, settle_pending_number
from invoicing.services.runs import DateSummary, RunSummary, ledger_entries, today_in
from invoicing.services.worker import DrainResult, drain
from invoicing.storage.errors import (
    AlreadyCredited,
    LeaseHeld,
    LeaseLost,
    NotFound,
    StorageNotConfigured,
    WrongState,
)

__all__ = [
    "DEFAULT_WORKERS",
    "AlreadyCredited",
    "DateSummary",
    "DecisionResult",
    "DispatchSummary",
    "DrainResult",
    "Export",
    "ImportResult",
    "LeaseHeld",
    "LeaseLost",
    "NotFound",
    "Progress",
    "RenderedDocument",
    "RunSummary",
    "StorageNotConfigured",
    "WorkDone",
    "WorkFailed",
    "WrongState",
    "adjust",
    "audit",
    "cancel",
    "confirm",
    "credit",
    "decide",
    "decide_upload",
    "drain",
    "export_workbook",
    "format_number",
    "get_invoice",
    "health",
    "health_report",
    "import_portfolio",
    "import_upload",
    "import_workbook",
    "invoice_document",
    "iter_invoices",
    "ledger_entries",
    "list_invoices",
    "open_queue",
    "open_store",
    "process_message",
    "range_documents",
    "run_daily",
    "settle_pending_number",
    "today_in",
]
