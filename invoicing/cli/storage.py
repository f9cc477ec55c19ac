"""The storage commands of the command line (SPEC C): import, run, export, confirm, cancel,
ledger, audit. Thin: parse, call ``invoicing.services``, print text, return the exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from azure.core.exceptions import AzureError, ServiceRequestError

from invoicing import services
from invoicing.cli.text import import_text, ledger_line, run_text
from invoicing.model import Invoice, Status
from invoicing.services import Progress
from invoicing.settings import Settings
from invoicing.storage.errors import LeaseHeld, NotFound, StorageError, WrongState
from invoicing.storage.store import Store

EXIT_OK, EXIT_ERROR, EXIT_LEASE_HELD, EXIT_AUDIT = 0, 1, 3, 4


def storage_errors(fn: Callable[..., int]) -> Callable[..., int]:
    """Storage failures as exit codes (SPEC C) with a one-line reason on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return fn(*args, **kwargs)
        except LeaseHeld as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LEASE_HELD
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except ServiceRequestError as exc:
            print(
                f"error: cannot reach the storage account: {str(exc).splitlines()[0]}",
                file=sys.stderr,
            )
            return EXIT_ERROR
        except AzureError as exc:
            print(
                f"error: storage: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                file=sys.stderr,
            )
            return EXIT_ERROR

    return wrapper


def progress(label: str) -> Progress | None:
    """Progress on stderr, only when a person watches it (a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total} contract(s)", end=end, file=sys.stderr, flush=True)

    return show


@storage_errors
def import_command(data: bytes, settings: Settings) -> int:
    result = services.import_upload(data, settings)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(import_text(result))
    return EXIT_OK


@storage_errors
def run_command(daily: bool, settings: Settings, span: tuple[date, date] | None) -> int:
    store = services.open_store(settings)
    if span is not None and daily:
        summary = services.run_daily(store, settings, today=span[0], progress=progress("run"))
    else:
        summary = services.run_daily(store, settings, span=span, progress=progress("run"))
    print(run_text(summary))
    return EXIT_OK


@storage_errors
def export_command(
    output: str,
    settings: Settings,
    start: date | None,
    end: date | None,
    status: Status | None,
    contract: str | None,
) -> int:
    from invoicing.cli import write_output
    from invoicing.workbook.writer import invoice_workbook_bytes

    store = services.open_store(settings)
    invoices, entries = services.list_invoices(store, start, end, status, contract)
    write_output(output, invoice_workbook_bytes(invoices, entries))
    print(f"{len(invoices)} invoice(s) and {len(entries)} run log row(s) written to {output}")
    return EXIT_OK


def _each(
    ids: list[str],
    settings: Settings,
    action: Callable[[Store, Settings, str], Invoice],
    verb: str,
) -> int:
    store = services.open_store(settings)
    failed = 0
    for invoice_id in ids:
        try:
            invoice = action(store, settings, invoice_id)
        except (NotFound, WrongState) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        number = f" as {invoice.invoice_number}" if invoice.invoice_number else ""
        print(f"{invoice.invoice_id} {verb}{number}")
    return EXIT_ERROR if failed else EXIT_OK


@storage_errors
def confirm_command(ids: list[str], settings: Settings) -> int:
    return _each(ids, settings, services.confirm, "confirmed")


@storage_errors
def cancel_command(ids: list[str], settings: Settings) -> int:
    return _each(ids, settings, services.cancel, "cancelled")


@storage_errors
def ledger_command(settings: Settings) -> int:
    """S6: the run ledger, newest first, one line per run date."""
    entries = services.ledger_entries(services.open_store(settings))
    if not entries:
        print("no run yet")
    for e in entries:
        print(ledger_line(e))
    return EXIT_OK


@storage_errors
def audit_command(settings: Settings) -> int:
    violations = services.audit(services.open_store(settings), settings)
    for violation in violations:
        print(violation)
    if violations:
        print(f"audit found {len(violations)} violation(s)", file=sys.stderr)
        return EXIT_AUDIT
    print("audit passed")
    return EXIT_OK
