"""The storage commands of the command line (SPEC C): import, run, export, confirm, cancel,
ledger, audit. Thin: parse, call ``invoicing.services``, print text, return the exit code; what
they raise is answered by ``invoicing.cli.exit_code`` from the table of ``invoicing.outcomes``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from invoicing import services
from invoicing.cli.files import UsageError, write_output
from invoicing.cli.listing import LISTED, invoice_lines
from invoicing.cli.text import decisions_text, import_text, ledger_line, run_text
from invoicing.model import Invoice, Status
from invoicing.outcomes import EXIT_AUDIT, EXIT_ERROR, EXIT_INVALID, EXIT_OK, outcome_of
from invoicing.requests import DocumentFormat
from invoicing.services import Progress
from invoicing.settings import Settings
from invoicing.storage.errors import NotFound, WrongState
from invoicing.storage.store import Store


def progress(label: str) -> Progress | None:
    """Progress on stderr, only when a person watches it (a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total} contract(s)", end=end, file=sys.stderr, flush=True)

    return show


def import_command(data: bytes, settings: Settings) -> int:
    result = services.import_upload(data, settings)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(import_text(result))
    return EXIT_OK


def run_command(daily: bool, settings: Settings, span: tuple[date, date] | None) -> int:
    store = services.open_store(settings)
    if span is not None and daily:
        summary = services.run_daily(store, settings, today=span[0], progress=progress("run"))
    else:
        summary = services.run_daily(store, settings, span=span, progress=progress("run"))
    print(run_text(summary))
    return EXIT_OK


def export_command(
    output: str,
    settings: Settings,
    start: date | None,
    end: date | None,
    status: Status | None,
    contract: str | None,
) -> int:
    store = services.open_store(settings)
    export = services.export_workbook(store, start, end, status, contract, keep=LISTED)
    write_output(output, export.data)
    print(f"{export.invoices} invoice(s) and {export.log_rows} run log row(s) written to {output}")
    for row in invoice_lines(export.first, export.invoices, output):
        print(row)
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
        except (NotFound, WrongState) as exc:  # said for each id; exit 1 at the end
            print(outcome_of(exc).stderr(exc), file=sys.stderr)
            failed += 1
            continue
        number = f" as {invoice.invoice_number}" if invoice.invoice_number else ""
        print(f"{invoice.invoice_id} {verb}{number}")
    return EXIT_ERROR if failed else EXIT_OK


def confirm_command(ids: list[str], settings: Settings) -> int:
    return _each(ids, settings, services.confirm, "confirmed")


def cancel_command(ids: list[str], settings: Settings) -> int:
    return _each(ids, settings, services.cancel, "cancelled")


def adjust_command(
    invoice_id: str, remove: list[str], write_off: list[str], note: str, settings: Settings
) -> int:
    """R22: remove details from a draft, or write them off."""
    invoice = services.adjust(
        services.open_store(settings), settings, invoice_id, remove, write_off, note
    )
    print(
        f"{invoice.invoice_id} {invoice.status.value}: {invoice.currency} {invoice.amount} "
        f"({len(remove)} removed, {len(write_off)} written off)"
    )
    return EXIT_OK


def credit_command(
    invoice_id: str, items: list[str] | None, write_off: bool, settings: Settings
) -> int:
    """R21: credit a confirmed invoice in full or for some details."""
    note = services.credit(services.open_store(settings), settings, invoice_id, items, write_off)
    what = "written off" if write_off else "back to the backlog"
    print(
        f"{note.invoice_number} {note.invoice_id} credits {invoice_id}: {note.currency} "
        f"{note.amount}, {sum(len(line.details) for line in note.lines)} detail(s) {what}"
    )
    return EXIT_OK


def decide_command(data: bytes, settings: Settings) -> int:
    """R23: the decisions marked in an invoice workbook."""
    result = services.decide_upload(data, settings)
    print(decisions_text(result))
    return EXIT_OK


def document_command(invoice_id: str, fmt: DocumentFormat, output: str, settings: Settings) -> int:
    document = services.invoice_document(services.open_store(settings), invoice_id, fmt)
    write_output(output, document.content)
    print(f"{document.invoice_id}: {fmt.value} written to {output}")
    return EXIT_OK


def documents_command(
    fmt: DocumentFormat,
    directory: str,
    settings: Settings,
    start: date | None,
    end: date | None,
    contract: str | None,
) -> int:
    """One file per live invoice and credit note of the range, named by its number (or id). An
    invoice that cannot have a document is said on stderr with every reason; the others are
    written, and the exit code is 2 when any was refused."""
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{directory}: not a directory")
    written = refused = 0
    names: dict[str, str] = {}
    watched = sys.stderr.isatty()
    for done, result in enumerate(
        services.range_documents(services.open_store(settings), fmt, start, end, contract), 1
    ):
        if isinstance(result, tuple):
            invoice_id, error = result
            print(f"{invoice_id}: {error}", file=sys.stderr)
            refused += 1
        elif result.filename in names:  # never replace a document of this batch
            print(
                f"{result.invoice_id}: its file name {result.filename} is taken by "
                f"{names[result.filename]} in this batch; not written",
                file=sys.stderr,
            )
            refused += 1
        else:
            names[result.filename] = result.invoice_id
            write_output(str(folder / result.filename), result.content)
            written += 1
        if watched:
            print(f"\rdocuments: {done}", end="", file=sys.stderr, flush=True)
    if watched:
        print(file=sys.stderr)
    print(f"{written} document(s) written to {directory}; {refused} refused")
    return EXIT_INVALID if refused else EXIT_OK


def ledger_command(settings: Settings) -> int:
    """S6: the run ledger, newest first, one line per run date."""
    entries = services.ledger_entries(services.open_store(settings))
    if not entries:
        print("no run yet")
    for e in entries:
        print(ledger_line(e))
    return EXIT_OK


def audit_command(settings: Settings) -> int:
    violations = services.audit(services.open_store(settings), settings)
    for violation in violations:
        print(violation)
    if violations:
        print(f"audit found {len(violations)} violation(s)", file=sys.stderr)
        return EXIT_AUDIT
    print("audit passed")
    return EXIT_OK
