"""Command line: ``python -m invoicing`` (SPEC C).

Exit codes: 0 done; 2 invalid input; 3 lease held by another run; 4 audit found violations;
1 anything else, with a one-line reason. What each failure exits with and prints is the table of
``invoicing.outcomes``, shared with the HTTP functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TextIO

from invoicing import outcomes, requests
from invoicing.cli.files import UsageError, read_upload, write_output
from invoicing.cli.listing import invoice_lines
from invoicing.outcomes import EXIT_ERROR, EXIT_OK
from invoicing.settings import Settings

__all__ = ["UsageError", "exit_code", "main", "read_upload", "write_output"]


def date_span(args: argparse.Namespace, *, required: bool) -> tuple[date, date] | None:
    """``--date D`` or ``--from A --to B``, checked (``invoicing.requests``, shared with HTTP)."""
    return requests.date_span(args.date, args.start, args.end, requests.CLI, required=required)


# ---- commands -----------------------------------------------------------------------------------


def cmd_template(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.workbook.template import build_template

    write_output(args.output, build_template())
    print(f"wrote the blank input template to {args.output}")
    return EXIT_OK


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.preview import preview_workbook

    span = date_span(args, required=True)
    assert span is not None
    data = read_upload(args.workbook, settings)
    result = preview_workbook(data, span[0], span[1], settings=settings)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_output(args.output, result.workbook)
    print(f"{len(result.invoices)} invoice(s) from {span[0]} to {span[1]} written to {args.output}")
    for row in invoice_lines(result.invoices, len(result.invoices), args.output):
        print(row)
    return EXIT_OK


# ---- storage commands (invoicing.cli.storage) ---------------------------------------------------


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.import_command(read_upload(args.workbook, settings), settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.run_command(bool(args.date), settings, date_span(args, required=False))


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    start, end = requests.date_bounds(args.start, args.end, requests.CLI)
    status = requests.parse_status(args.status, "--status")
    return storage.export_command(args.output, settings, start, end, status, args.contract)


def cmd_confirm(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.confirm_command(args.ids, settings)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.cancel_command(args.ids, settings)


def cmd_adjust(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.adjust_command(
        args.id, args.remove or [], args.write_off or [], args.note or "", settings
    )


def cmd_credit(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.credit_command(args.id, args.items, args.write_off, settings)


def cmd_decide(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.decide_command(read_upload(args.workbook, settings), settings)


def cmd_document(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    fmt = requests.parse_format(args.format, "--format")
    return storage.document_command(args.id, fmt, args.output, settings)


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    start, end = requests.date_bounds(args.start, args.end, requests.CLI)
    fmt = requests.parse_format(args.format, "--format")
    return storage.documents_command(fmt, args.output, settings, start, end, args.contract)


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.ledger_command(settings)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import storage

    return storage.audit_command(settings)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing.cli import worker

    if args.max_messages is not None and args.max_messages < 1:
        raise UsageError("--max-messages must be at least 1")
    visibility = args.visibility_seconds
    if args.idle_seconds < 0 or (visibility is not None and visibility < 1):
        raise UsageError("--idle-seconds must be >= 0 and --visibility-seconds >= 1")
    if args.batch is not None and not 1 <= args.batch <= 32:
        raise UsageError("--batch must be 1 to 32 (the queue's limit per receive)")
    return worker.worker_command(
        settings, args.max_messages, args.idle_seconds, args.visibility_seconds, args.batch
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m invoicing", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("template", help="write the blank input template")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_template)

    p = sub.add_parser("preview", help="invoices of a date or range, no storage (R20)")
    p.add_argument("workbook")
    _date_options(p)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_preview)

    p = sub.add_parser("import", help="validate and import a workbook into storage (S5)")
    p.add_argument("workbook")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("run", help="the daily run under the lease (R17-R19)")
    _date_options(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("export", help="invoice workbook from storage")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--status", metavar="{Draft,Confirmed,Cancelled}")
    p.add_argument("--contract")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_export)

    for name, handler, text in (
        ("confirm", cmd_confirm, "confirm draft invoices (R15, R16)"),
        ("cancel", cmd_cancel, "cancel draft invoices (R15)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("ids", nargs="+", metavar="ID")
        p.set_defaults(handler=handler)

    p = sub.add_parser("adjust", help="remove or write off details of a draft (R22)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--remove", nargs="+", metavar="SRC", help="SourceIds back to the backlog")
    p.add_argument("--write-off", nargs="+", metavar="SRC", help="SourceIds closed for good")
    p.add_argument("--note", help="why they are written off")
    p.set_defaults(handler=cmd_adjust)

    p = sub.add_parser("credit", help="credit a confirmed invoice (R21)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--items", nargs="+", metavar="SRC", help="SourceIds to credit (default all)")
    p.add_argument("--write-off", action="store_true", help="close the credited shares for good")
    p.set_defaults(handler=cmd_credit)

    p = sub.add_parser("decide", help="apply the decisions marked in an invoice workbook (R23)")
    p.add_argument("workbook")
    p.set_defaults(handler=cmd_decide)

    p = sub.add_parser("document", help="an invoice or credit note as PDF or e-invoice XML (E3)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--format", metavar="{pdf,xml,cii,ubl}", help="default pdf; xml is cii")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_document)

    p = sub.add_parser("documents", help="the documents of every invoice of a range, one file each")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--contract")
    p.add_argument("--format", metavar="{pdf,xml,cii,ubl}", help="default pdf; xml is cii")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(handler=cmd_documents)

    p = sub.add_parser("ledger", help="the run ledger: one line per run date (S6)")
    p.set_defaults(handler=cmd_ledger)

    p = sub.add_parser("audit", help="check the store's invariants (S7)")
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("worker", help="drain the work queue of a queued run (S9, like H11)")
    p.add_argument("--max-messages", type=int, metavar="N", help="stop after N messages")
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="stop once the queue stayed empty for S seconds (default 10)",
    )
    p.add_argument(
        "--visibility-seconds",
        type=int,
        metavar="V",
        help="hold and retry delay of a message (default host.json's visibilityTimeout)",
    )
    p.add_argument(
        "--batch",
        type=int,
        metavar="B",
        help="messages received and invoiced together (default host.json's batchSize)",
    )
    p.set_defaults(handler=cmd_worker)
    return parser


def _date_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")


class ReaderMayLeave:
    """stdout or stderr whose reader may stop reading (``preview ... | head -1``).

    Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises BrokenPipeError;
    uncaught, it turned a finished command into exit 1 (or, from the interpreter's final flush,
    exit 120 and an "Exception ignored" message). The reader leaving is not a failure of the
    command, and it must not stop the work half-way either (``confirm A B C | head -1`` still
    confirms C; with PYTHONUNBUFFERED every print writes at once). So the first BrokenPipeError
    points the file descriptor at /dev/null (the recipe of the Python documentation, "Note on
    SIGPIPE", so the interpreter's own final flush is quiet too), later writes are dropped, the
    command carries on, and its exit code is what it did, not whether anyone read it to the end.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self._gone = True
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (pytest's capture)
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer ...
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ReaderMayLeave(stdout), ReaderMayLeave(stderr)  # type: ignore[assignment]
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a reader that left is handled like above
        sys.stderr.flush()
        return code
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    return exit_code(lambda: args.handler(args, Settings.from_env()))


def exit_code(command: Callable[[], int]) -> int:
    """Run one command; map what it raises to the exit codes of SPEC C, the reason on stderr
    (``invoicing.outcomes``)."""
    try:
        return int(command())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit:
        raise
    except BaseException as exc:  # native parsers raise BaseException subclasses (pyo3 panics)
        outcome = outcomes.outcome_of(exc)
        if outcome is outcomes.UNFORESEEN:  # the one-line reason of SPEC C; the detail to the log
            logging.getLogger("invoicing").debug("unexpected error", exc_info=True)
        print(outcome.stderr(exc), file=sys.stderr)
        return outcome.exit_code
