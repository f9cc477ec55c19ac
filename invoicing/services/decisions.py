"""Decisions in bulk from the invoice workbook (R23).

Every decision is first checked against the store (unknown invoice or detail, wrong state, a
detail decision that contradicts its invoice's); any problem rejects the whole upload with every
problem at its cell, nothing applied. Then they are applied invoice by invoice in the sheet's row
order (so confirmation numbers follow the sheet): first the invoice's detail decisions (remove
and write off on a draft; credit on a confirmed invoice), then its own. Each is idempotent: what
is already so is counted as already done, so the same upload twice changes nothing the second
time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from invoicing.errors import InputRejected, Problem
from invoicing.model import DetailStatus, Invoice, Status
from invoicing.services.common import open_store
from invoicing.services.corrections import (
    adjust,
    ambiguous_source_ids,
    credit,
    credited_source_ids,
)
from invoicing.services.invoices import get_invoice
from invoicing.services.lifecycle import cancel, confirm
from invoicing.settings import Settings
from invoicing.storage.errors import NotFound
from invoicing.storage.store import MAX_BATCH_OPS, Store
from invoicing.workbook.decisions import DETAILS, INVOICES, Decisions, parse_decisions

ADJUST = {"Remove": DetailStatus.REMOVED, "WriteOff": DetailStatus.WRITTEN_OFF}
CREDIT = {"Credit": False, "CreditWriteOff": True}  # -> write off?


@dataclass
class DecisionResult:
    done: Counter[str] = field(default_factory=Counter)
    already: list[str] = field(default_factory=list)  # what was already so, in words
    numbers: list[dict[str, str]] = field(default_factory=list)  # new invoice / credit numbers

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": dict(self.done),
            "already_done": len(self.already),
            "already": self.already,
            "numbers": self.numbers,
        }


def decide_upload(data: bytes, settings: Settings) -> DecisionResult:
    """Read the upload first (a bad file is answered as such even while storage is down)."""
    decisions, problems = parse_decisions(data, settings)
    if problems and not decisions.invoices and not decisions.details:
        raise InputRejected(problems, title="The decisions have errors")
    return decide(open_store(settings), settings, decisions, problems)


@dataclass
class _Plan:
    invoice: Invoice
    cell: str | None = None  # of the invoice decision
    decision: str | None = None
    adjust: dict[str, DetailStatus] = field(default_factory=dict)
    credits: dict[bool, list[str]] = field(default_factory=dict)  # write off? -> SourceIds


def decide(
    store: Store, settings: Settings, decisions: Decisions, problems: list[Problem] | None = None
) -> DecisionResult:
    """Check every decision against the store, then apply them all, or none (with every
    problem, ``problems`` of the unreadable cells included)."""
    plans, found = _check(store, decisions)
    problems = sorted([*(problems or []), *found], key=_order)
    if problems:
        raise InputRejected(problems, title="The decisions cannot be applied")
    result = DecisionResult()
    for plan in plans:
        _apply(store, settings, plan, result)
    return result


def _order(p: Problem) -> tuple[int, int, str]:
    digits = "".join(ch for ch in p.cell if ch.isdigit())
    return (0 if p.sheet == INVOICES else 1, int(digits or 0), p.cell)


def _check(store: Store, decisions: Decisions) -> tuple[list[_Plan], list[Problem]]:
    plans: dict[str, _Plan] = {}
    problems: list[Problem] = []
    missing: set[str] = set()

    def plan_of(invoice_id: str, sheet: str, cell: str) -> _Plan | None:
        if invoice_id in missing:
            problems.append(Problem(sheet, cell, f"no invoice {invoice_id}"))
            return None
        if invoice_id not in plans:
            try:
                plans[invoice_id] = _Plan(get_invoice(store, invoice_id))
            except NotFound:
                missing.add(invoice_id)
                problems.append(Problem(sheet, cell, f"no invoice {invoice_id}"))
                return None
        return plans[invoice_id]

    for d in decisions.invoices:
        plan = plan_of(d.invoice_id, INVOICES, d.cell)
        if plan is None:
            continue
        if plan.decision is not None and plan.decision != d.decision:
            problems.append(
                Problem(INVOICES, d.cell, f"{d.invoice_id} already has decision {plan.decision}")
            )
            continue
        plan.cell, plan.decision = d.cell, d.decision
        problem = _invoice_problem(plan.invoice, d.decision)
        if problem:
            problems.append(Problem(INVOICES, d.cell, problem))
    seen: dict[tuple[str, str], tuple[str, str]] = {}  # (invoice, source) -> (decision, cell)
    for d in decisions.details:
        plan = plan_of(d.invoice_id, DETAILS, d.cell)
        if plan is None:
            continue
        earlier = seen.setdefault((d.invoice_id, d.source_id), (d.decision, d.cell))
        if earlier[1] != d.cell:
            if earlier[0] != d.decision:
                problems.append(
                    Problem(
                        DETAILS,
                        d.cell,
                        f"{d.source_id} of {d.invoice_id} already has decision {earlier[0]} "
                        f"(at {earlier[1]}); one decision per detail",
                    )
                )
            continue
        problem = _detail_problem(plan, d.source_id, d.decision)
        if problem:
            problems.append(Problem(DETAILS, d.cell, problem))
            continue
        if d.decision in ADJUST:
            plan.adjust[d.source_id] = ADJUST[d.decision]
        else:
            plan.credits.setdefault(CREDIT[d.decision], []).append(d.source_id)
    for plan in plans.values():
        lines = {
            line.line_number
            for line in plan.invoice.lines
            for d in line.details
            if d.source_id in plan.adjust
        }
        if len(plan.adjust) + len(lines) + 1 > MAX_BATCH_OPS:
            problems.append(
                Problem(
                    INVOICES,
                    plan.cell or "",
                    f"{plan.invoice.invoice_id}: {len(plan.adjust)} detail decisions on one draft "
                    "do not fit one atomic change; decide on fewer of its details per upload",
                )
            )
        live = [
            d.source_id
            for line in plan.invoice.lines
            for d in line.details
            if d.status is DetailStatus.INVOICED and d.source_id not in plan.adjust
        ]
        if plan.decision == "Confirm" and not live and plan.invoice.status is Status.DRAFT:
            problems.append(
                Problem(
                    INVOICES,
                    plan.cell or "",
                    f"{plan.invoice.invoice_id}: every detail is removed or written off, so it "
                    "is cancelled: it cannot be confirmed",
                )
            )
    return list(plans.values()), problems


def _invoice_problem(invoice: Invoice, decision: str) -> str | None:
    status = invoice.status
    if invoice.is_credit_note:
        return f"{invoice.invoice_id} is a credit note: it takes no decision"
    if decision == "Cancel" and status is Status.CONFIRMED:
        return f"{invoice.invoice_id} is Confirmed: credit it instead of cancelling"
    if decision == "Confirm" and status is Status.CANCELLED:
        return f"{invoice.invoice_id} is Cancelled: it cannot be confirmed"
    if decision == "Credit" and status is not Status.CONFIRMED:
        return f"{invoice.invoice_id} is {status.value}: only a confirmed invoice is credited"
    return None


def _detail_problem(plan: _Plan, source_id: str, decision: str) -> str | None:
    invoice = plan.invoice
    found = next(
        (d for line in invoice.lines for d in line.details if d.source_id == source_id), None
    )
    if found is None:
        return f"{invoice.invoice_id} has no detail {source_id}"
    if ambiguous_source_ids(invoice, [source_id]):
        return (
            f"{source_id} is both a transaction and a milestone on {invoice.invoice_id}: a "
            "decision by SourceId cannot tell them apart; decide on the invoice instead"
        )
    if invoice.is_credit_note:
        return f"{invoice.invoice_id} is a credit note: its details take no decision"
    if plan.decision in ("Cancel", "Credit"):
        return (
            f"{decision} contradicts the invoice's decision {plan.decision}: "
            "decide on the invoice or on its details"
        )
    if decision in ADJUST:
        if invoice.status is not Status.DRAFT and found.status is not ADJUST[decision]:
            return f"{invoice.invoice_id} is {invoice.status.value}: only a draft is adjusted"
        if found.status not in (DetailStatus.INVOICED, ADJUST[decision]):
            return f"{source_id} is {found.status.value}: it cannot change again"
    else:
        if plan.decision == "Confirm":
            return f"{decision} contradicts Confirm: credit a detail once its invoice is confirmed"
        if invoice.status is not Status.CONFIRMED:
            return (
                f"{invoice.invoice_id} is {invoice.status.value}: only a confirmed invoice is "
                "credited"
            )
        if found.status is not DetailStatus.INVOICED:
            return f"{source_id} is {found.status.value}: there is nothing of it to credit"
    return None


def _apply(store: Store, settings: Settings, plan: _Plan, result: DecisionResult) -> None:
    invoice = plan.invoice
    invoice_id = invoice.invoice_id
    todo = {s: st for s, st in plan.adjust.items() if _detail_status(invoice, s) is not st}
    for source_id in plan.adjust.keys() - todo.keys():
        result.already.append(f"{invoice_id} {source_id}: already {plan.adjust[source_id].value}")
    if todo:
        remove = [s for s, st in todo.items() if st is DetailStatus.REMOVED]
        write_off = [s for s, st in todo.items() if st is DetailStatus.WRITTEN_OFF]
        invoice = adjust(store, settings, invoice_id, remove=remove, write_off=write_off)
        result.done["removed"] += len(remove)
        result.done["written_off"] += len(write_off)
    for write_off, items in plan.credits.items():
        already = credited_source_ids(store, invoice_id)
        new = [s for s in items if s not in already]
        for s in items:
            if s in already:
                result.already.append(f"{invoice_id} {s}: already credited")
        if new:
            note = credit(store, settings, invoice_id, new, write_off)
            result.done["credit_notes"] += 1
            result.numbers.append(
                {"CreditNoteId": note.invoice_id, "Number": note.invoice_number or ""}
            )
    if plan.decision == "Confirm":
        if invoice.status is Status.CONFIRMED:
            result.already.append(f"{invoice_id}: already confirmed as {invoice.invoice_number}")
        else:
            confirmed = confirm(store, settings, invoice_id)
            result.done["confirmed"] += 1
            result.numbers.append(
                {"InvoiceId": invoice_id, "Number": confirmed.invoice_number or ""}
            )
    elif plan.decision == "Cancel":
        if invoice.status is Status.CANCELLED:
            result.already.append(f"{invoice_id}: already cancelled")
        else:
            cancel(store, settings, invoice_id)
            result.done["cancelled"] += 1
    elif plan.decision == "Credit":
        invoiced = {
            d.source_id
            for line in invoice.lines
            for d in line.details
            if d.status is DetailStatus.INVOICED
        }
        if invoiced <= credited_source_ids(store, invoice_id):
            result.already.append(f"{invoice_id}: already credited in full")
        else:
            note = credit(store, settings, invoice_id)
            result.done["credit_notes"] += 1
            result.numbers.append(
                {"CreditNoteId": note.invoice_id, "Number": note.invoice_number or ""}
            )


def _detail_status(invoice: Invoice, source_id: str) -> DetailStatus | None:
    for line in invoice.lines:
        for d in line.details:
            if d.source_id == source_id:
                return d.status
    return None
