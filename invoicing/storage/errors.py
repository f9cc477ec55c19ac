"""Errors of the storage-backed operations; the CLI and the HTTP handlers map them to exit codes
and statuses (CLI: LeaseHeld 3, the others 1; HTTP: LeaseHeld 409, NotFound 404, WrongState 409)."""

from __future__ import annotations

from invoicing.storage.keys import describe_key


class StorageError(Exception):
    """Base class: a storage-backed operation could not be done; the message says why."""


class StorageNotConfigured(StorageError):
    def __init__(self, problem: str = "no storage connection") -> None:
        super().__init__(
            f"{problem}: set INVOICING_STORAGE (or AzureWebJobsStorage) to an Azure "
            "Storage connection string"
        )


class LeaseHeld(StorageError):
    """Another run holds the blob lease (R18): nothing was done."""

    def __init__(self, what: str = "run") -> None:
        super().__init__(f"another run holds the lease; nothing done ({what} not started)")


class LeaseLost(StorageError):
    """The lease was lost (broken, expired or starved) mid-work: stopped before the next write."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"lost the lease ({why}); stopped before the next write; the next run finishes the work"
        )


class NotFound(StorageError):
    def __init__(self, invoice_id: str) -> None:
        self.invoice_id = invoice_id
        super().__init__(f"{invoice_id}: no such invoice")


class WrongState(StorageError):
    def __init__(self, invoice_id: str, status: str, wanted: str = "a draft") -> None:
        self.invoice_id = invoice_id
        self.status = status
        super().__init__(f"{invoice_id} is {status}, not {wanted}")


class AlreadyCredited(WrongState):
    """A detail of the invoice is already on a credit note (R21: a share is credited once)."""

    def __init__(self, invoice_id: str, source_ids: list[str] | tuple[str, ...], by: str) -> None:
        super().__init__(invoice_id, "Confirmed")
        self.args = (
            f"{invoice_id}: {', '.join(source_ids[:10])} already credited by {by}; "
            "a share is credited at most once",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class WriteRefused(StorageError):
    """Raised by the test seam (Store.write_hook) to simulate a crash before a write."""


class StateChanged(StorageError):
    """A contract's state changed while a run planned it (a cancel, a credit, an import, another
    worker): the commit was refused whole; the contract is redone from what is stored now."""

    def __init__(
        self, pk: str, then: str = "the next run (or delivery) invoices it", what: str = "invoiced"
    ) -> None:
        super().__init__(
            f"contract {describe_key(pk)}: it changed while it was being {what}; nothing of "
            f"this attempt was committed, and {then}"
        )
