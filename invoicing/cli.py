"""Command line: ``python -m invoicing`` (SPEC C).

Exit codes: 0 done; 2 invalid input; 3 lease held by another run; 4 audit found violations;
1 anything else, with a one-line reason.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from invoicing.errors import InputRejected, UploadRejected
from invoicing.model import EARLIEST_RUN_DATE, LATEST_RUN_DATE
from invoicing.settings import Settings, SettingsError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_LEASE_HELD = 3
EXIT_AUDIT = 4
PREVIEW_LISTED = 50  # invoices listed on stdout; the workbook has them all


class UsageError(Exception):
    """A mistake in the command line itself (exit 2)."""


def parse_iso_date(text: str, what: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f'{what} "{text}" is not a date in YYYY-MM-DD form') from None
    if not EARLIEST_RUN_DATE <= day <= LATEST_RUN_DATE:
        raise UsageError(f"{what} {day} is outside {EARLIEST_RUN_DATE} to {LATEST_RUN_DATE}")
    return day


def date_span(args: argparse.Namespace, *, required: bool) -> tuple[date, date] | None:
    """``--date D`` or ``--from A --to B``, checked."""
    if args.date and (args.start or args.end):
        raise UsageError("give either --date or --from/--to, not both")
    if args.date:
        day = parse_iso_date(args.date, "--date")
        return day, day
    if args.start or args.end:
        if not (args.start and args.end):
            raise UsageError("--from and --to go together")
        start = parse_iso_date(args.start, "--from")
        end = parse_iso_date(args.end, "--to")
        if end < start:
            raise UsageError(f"--to {end} is before --from {start}")
        return start, end
    if required:
        raise UsageError("give --date D or --from A --to B")
    return None


def read_upload(path: str, settings: Settings) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such file")
    size = file.stat().st_size
    if size > settings.max_upload_bytes:
        raise UploadRejected(
            f"{path} is {size:,} bytes; the limit is {settings.max_upload_bytes:,} bytes",
            status=413,
        )
    return file.read_bytes()


def write_output(path: str, data: bytes) -> None:
    """Write atomically so a failure never leaves a half-written output file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)


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
    shown = result.invoices[:PREVIEW_LISTED]
    for invoice in shown:
        print(
            f"  {invoice.invoice_date}  {invoice.invoice_id}  {invoice.contract_id}  "
            f"{invoice.customer_id}  {invoice.currency} {invoice.amount}  "
            f"{len(invoice.lines)} line(s)"
        )
    if len(result.invoices) > len(shown):
        print(f"  ... and {len(result.invoices) - len(shown):,} more (see {args.output})")
    return EXIT_OK


# ---- storage commands (implemented in invoicing.services) ----------------------------------


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_import(read_upload(args.workbook, settings), settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_run(args, settings, date_span(args, required=False))


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    start = parse_iso_date(args.start, "--from") if args.start else None
    end = parse_iso_date(args.end, "--to") if args.end else None
    return services.cli_export(args, settings, start, end)


def cmd_confirm(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_confirm(args, settings)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_cancel(args, settings)


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_ledger(args, settings)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from invoicing import services

    return services.cli_audit(args, settings)


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
    p.add_argument("--status", choices=["Draft", "Confirmed", "Cancelled"])
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

    p = sub.add_parser("ledger", help="the run ledger: one line per run date (S6)")
    p.set_defaults(handler=cmd_ledger)

    p = sub.add_parser("audit", help="check the store's invariants (S7)")
    p.set_defaults(handler=cmd_audit)
    return parser


def _date_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings))
    except InputRejected as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        print(f"{exc.total:,} error(s); nothing was written", file=sys.stderr)
        return EXIT_INVALID
    except (UploadRejected, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BaseException as exc:  # the one-line reason of SPEC C; the detail goes to the log
        if isinstance(exc, SystemExit):
            raise
        # Native parsers can raise BaseException subclasses (pyo3's PanicException).
        logging.getLogger("invoicing").debug("unexpected error", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
