"""Results as text for a person at a terminal (the CLI's output; JSON is ``as_dict``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from invoicing.services import DecisionResult, DispatchSummary, ImportResult, RunSummary


def import_text(result: ImportResult) -> str:
    rows = [f"imported {result.contracts} contract(s)"]
    for sheet, c in result.sheets.items():
        rows.append(
            f"  {sheet:<16} created {c['created']:>7,}  updated {c['updated']:>7,}  "
            f"unchanged {c['unchanged']:>7,}"
            + (f"  removed {c['removed']:,}" if c["removed"] else "")
        )
    return "\n".join(rows)


def run_text(summary: RunSummary) -> str:
    if isinstance(summary, DispatchSummary):
        return dispatch_text(summary)
    rows: list[str] = []
    if summary.dates:
        first, last = summary.dates[0].run_date, summary.dates[-1].run_date
        span = f"{first} .. {last}" if len(summary.dates) > 1 else str(first)
        rows.append(
            f"ran {len(summary.dates)} date(s) ({span}) over {summary.contracts} contract(s) "
            f"in {summary.seconds:.1f} s"
        )
    else:
        rows.append("nothing to run")
    rows.extend(_catch_up_rows(summary))
    if summary.blocked:
        more = len(summary.blocked) - 20
        rows.append(
            "not invoiced, their import never finished (import the workbook again): "
            + ", ".join(summary.blocked[:20])
            + (f" and {more} more" if more > 0 else "")
            + "; the dates run stay incomplete"
        )
    for contract_id, reason in list(summary.failed.items())[:20]:
        rows.append(f"failed, not invoiced this run (the next run retries) {contract_id}: {reason}")
    amounts = ", ".join(f"{c} {a}" for c, a in summary.amounts.items()) or "nothing"
    rows.append(f"invoices created: {summary.invoices}; amounts: {amounts}")
    rows.append(f"held items: {summary.held}; skipped lines: {summary.skipped}")
    for d in summary.dates:
        if d.invoices or d.held or d.skipped:
            amounts = ", ".join(f"{c} {a}" for c, a in sorted(d.amounts.items()))
            rows.append(
                f"  {d.run_date}  {d.invoices} invoice(s)  {amounts}"
                + (f"  held {d.held}" if d.held else "")
                + (f"  skipped {d.skipped} line(s)" if d.skipped else "")
            )
    return "\n".join(rows)


def dispatch_text(summary: DispatchSummary) -> str:
    """A run in queue mode (S9): what it enqueued; the workers invoice and complete the ledger."""
    rows: list[str] = []
    if summary.dispatched:
        rows.append(
            f"queued {summary.queued} contract(s) over {len(summary.dispatched)} date(s) "
            f"({dates_text(summary.dispatched)}) on queue {summary.queue} as batch "
            f"{summary.batch}, in {summary.seconds:.1f} s; the invoice_contracts function or "
            "`python -m invoicing worker` invoices them and completes the ledger"
        )
    if summary.taken_over:
        rows.append(f"took over the unfinished work of batch(es) {', '.join(summary.taken_over)}")
    if summary.completed_at_once:
        rows.append(
            f"nothing due, completed at once: {dates_text(summary.completed_at_once)}"
        )
    if not summary.dispatched and not summary.completed_at_once:
        rows.append("nothing to run")
    rows.extend(_catch_up_rows(summary))
    if summary.blocked:
        rows.append(
            "not queued, their import never finished (import the workbook again): "
            + ", ".join(summary.blocked[:20])
            + "; the dates stay incomplete"
        )
    return "\n".join(rows)


def dates_text(days: list[date]) -> str:
    if len(days) > 4:
        return f"{days[0]} .. {days[-1]} ({len(days)} dates)"
    return ", ".join(str(d) for d in days)


def ledger_line(e: dict[str, Any]) -> str:
    amounts = ", ".join(f"{cur} {amt}" for cur, amt in sorted(e["amounts"].items()))
    return (
        f"{e['date']}  {e['state']:<10}  contracts {e['contracts'] or 0:>6}  "
        f"invoices {e['invoices'] or 0:>6}  held {e['held'] or 0:>4}  "
        f"skipped {e['skipped_lines'] or 0:>5}  {amounts}"
    )


def decisions_text(result: DecisionResult) -> str:
    done = ", ".join(f"{what.replace('_', ' ')} {n}" for what, n in sorted(result.done.items()))
    rows = [f"decisions applied: {done or 'none'}; already done: {len(result.already)}"]
    for n in result.numbers:
        rows.append(f"  {n.get('InvoiceId') or n.get('CreditNoteId')}  {n['Number']}")
    rows += [f"  already: {text}" for text in result.already[:50]]
    if len(result.already) > 50:
        rows.append(f"  ... and {len(result.already) - 50} more already done")
    return "\n".join(rows)


def _catch_up_rows(summary: Any) -> list[str]:
    """What the catch-up (R19) left alone, inline or queued: dates completed before, Missed."""
    rows = []
    if summary.already_done:
        rows.append(f"already completed, not rerun: {dates_text(summary.already_done)}")
    if summary.missed:
        rows.append(
            f"missed (older than the catch-up window, INVOICE_CATCHUP_DAYS, and never "
            f"completed): {dates_text(summary.missed)}; run them with run --from A --to B"
        )
    return rows
